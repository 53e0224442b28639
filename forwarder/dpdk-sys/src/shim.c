#include "shim.h"

uint16_t ecmp_rte_eth_rx_burst(uint16_t port_id, uint16_t queue_id, struct rte_mbuf **rx_pkts,
                               uint16_t nb_pkts) {
    return rte_eth_rx_burst(port_id, queue_id, rx_pkts, nb_pkts);
}

uint16_t ecmp_rte_eth_tx_burst(uint16_t port_id, uint16_t queue_id, struct rte_mbuf **tx_pkts,
                               uint16_t nb_pkts) {
    return rte_eth_tx_burst(port_id, queue_id, tx_pkts, nb_pkts);
}

struct rte_mbuf *ecmp_rte_pktmbuf_alloc(struct rte_mempool *mp) { return rte_pktmbuf_alloc(mp); }

int ecmp_rte_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs,
                                unsigned int count) {
    return rte_pktmbuf_alloc_bulk(mp, mbufs, count);
}

void ecmp_rte_pktmbuf_free(struct rte_mbuf *m) { rte_pktmbuf_free(m); }

void ecmp_rte_pktmbuf_free_bulk(struct rte_mbuf **mbufs, unsigned int count) {
    rte_pktmbuf_free_bulk(mbufs, count);
}

void *ecmp_rte_pktmbuf_mtod(struct rte_mbuf *m) { return rte_pktmbuf_mtod(m, void *); }

uint16_t ecmp_rte_pktmbuf_headroom(const struct rte_mbuf *m) { return rte_pktmbuf_headroom(m); }

uint16_t ecmp_rte_pktmbuf_tailroom(const struct rte_mbuf *m) { return rte_pktmbuf_tailroom(m); }

char *ecmp_rte_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len) {
    return rte_pktmbuf_prepend(m, len);
}

char *ecmp_rte_pktmbuf_append(struct rte_mbuf *m, uint16_t len) {
    return rte_pktmbuf_append(m, len);
}

char *ecmp_rte_pktmbuf_adj(struct rte_mbuf *m, uint16_t len) { return rte_pktmbuf_adj(m, len); }

int ecmp_rte_pktmbuf_trim(struct rte_mbuf *m, uint16_t len) { return rte_pktmbuf_trim(m, len); }

unsigned int ecmp_rte_mempool_avail_count(const struct rte_mempool *mp) {
    return rte_mempool_avail_count(mp);
}

unsigned int ecmp_rte_mempool_in_use_count(const struct rte_mempool *mp) {
    return rte_mempool_in_use_count(mp);
}

int ecmp_rte_errno(void) { return rte_errno; }

unsigned int ecmp_rte_lcore_id(void) { return rte_lcore_id(); }

uint16_t ecmp_rte_pktmbuf_headroom_default(void) { return RTE_PKTMBUF_HEADROOM; }

const uint64_t ECMP_RTE_ETH_RSS_IP = RTE_ETH_RSS_IP;
const uint64_t ECMP_RTE_ETH_RSS_TCP = RTE_ETH_RSS_TCP;
const uint64_t ECMP_RTE_ETH_RSS_UDP = RTE_ETH_RSS_UDP;
