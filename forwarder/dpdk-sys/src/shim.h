/* Non-inline wrappers for the static inline DPDK functions ecmpfwd calls: bindgen cannot bind
 * static inline functions, so these give them a linkable symbol. Each one only forwards. */
#ifndef ECMP_DPDK_SHIM_H
#define ECMP_DPDK_SHIM_H

#include <rte_config.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_ethdev.h>
#include <rte_mempool.h>
#include <rte_mbuf.h>
#include <rte_dev.h>

uint16_t ecmp_rte_eth_rx_burst(uint16_t port_id, uint16_t queue_id, struct rte_mbuf **rx_pkts,
                               uint16_t nb_pkts);
uint16_t ecmp_rte_eth_tx_burst(uint16_t port_id, uint16_t queue_id, struct rte_mbuf **tx_pkts,
                               uint16_t nb_pkts);
struct rte_mbuf *ecmp_rte_pktmbuf_alloc(struct rte_mempool *mp);
int ecmp_rte_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs,
                                unsigned int count);
void ecmp_rte_pktmbuf_free(struct rte_mbuf *m);
void ecmp_rte_pktmbuf_free_bulk(struct rte_mbuf **mbufs, unsigned int count);
void *ecmp_rte_pktmbuf_mtod(struct rte_mbuf *m);
uint16_t ecmp_rte_pktmbuf_headroom(const struct rte_mbuf *m);
uint16_t ecmp_rte_pktmbuf_tailroom(const struct rte_mbuf *m);
char *ecmp_rte_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len);
char *ecmp_rte_pktmbuf_append(struct rte_mbuf *m, uint16_t len);
char *ecmp_rte_pktmbuf_adj(struct rte_mbuf *m, uint16_t len);
int ecmp_rte_pktmbuf_trim(struct rte_mbuf *m, uint16_t len);
unsigned int ecmp_rte_mempool_avail_count(const struct rte_mempool *mp);
unsigned int ecmp_rte_mempool_in_use_count(const struct rte_mempool *mp);
int ecmp_rte_errno(void);
unsigned int ecmp_rte_lcore_id(void);
/* RTE_PKTMBUF_HEADROOM: the headroom a fresh or received mbuf starts with (a build constant). */
uint16_t ecmp_rte_pktmbuf_headroom_default(void);

/* Function-like macros bindgen cannot evaluate, exported as constants. */
extern const uint64_t ECMP_RTE_ETH_RSS_IP;
extern const uint64_t ECMP_RTE_ETH_RSS_TCP;
extern const uint64_t ECMP_RTE_ETH_RSS_UDP;

#endif
