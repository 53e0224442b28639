//! Keeps the daemon's own threads (control, feed and control sockets, metrics, neighbour
//! upkeep) off the cores its workers are pinned to.
//!
//! A poll-mode worker owns its core: with the control thread free to run there, a burst of route
//! updates (a publication every few hundred microseconds under churn) preempts the worker for
//! milliseconds, longer than its rx ring holds at line rate, and the kernel drops at the AF_XDP
//! socket. DPDK's main lcore and VPP's main thread stay off the workers' cores the same way.
//!
//! How: before any of those threads is spawned, the main thread restricts itself to the cores no
//! worker takes; every thread it spawns afterwards inherits that mask, and each worker then pins
//! itself to its own core explicitly. When the workers take every core the process may use, the
//! mask is left as it was (there is nowhere else to go).

use rustix::thread::{CpuSet, sched_getaffinity, sched_setaffinity};

/// The cores of `allowed` that no worker takes, ascending; empty when workers take them all.
pub fn housekeeping_cores(allowed: &[usize], worker_cores: &[usize]) -> Vec<usize> {
    let mut out: Vec<usize> = allowed
        .iter()
        .copied()
        .filter(|c| !worker_cores.contains(c))
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// Restricts the calling thread, and every thread it spawns from now on, to the cores it may
/// use that no worker takes. Returns those cores, or `None` when it changed nothing (workers
/// take every core, or the kernel refused: the daemon then runs as before, unrestricted).
pub fn keep_off_worker_cores(worker_cores: &[usize]) -> Option<Vec<usize>> {
    let current = sched_getaffinity(None).ok()?;
    let allowed: Vec<usize> = (0..CpuSet::MAX_CPU)
        .filter(|&c| current.is_set(c))
        .collect();
    let cores = housekeeping_cores(&allowed, worker_cores);
    if cores.is_empty() {
        return None;
    }
    let mut set = CpuSet::new();
    for &c in &cores {
        set.set(c);
    }
    sched_setaffinity(None, &set).ok()?;
    Some(cores)
}

/// Pins the calling thread to `core` alone (a worker). Set directly rather than looked up in
/// `core_affinity::get_core_ids`, which lists the calling thread's own mask: a worker spawned
/// by the restricted main thread would not find its core there.
pub fn pin_to(core: usize) -> bool {
    core_affinity::set_for_current(core_affinity::CoreId { id: core })
}

/// The cores the calling thread may run on now; `None` when the kernel does not say.
pub fn allowed_cores() -> Option<Vec<usize>> {
    let current = sched_getaffinity(None).ok()?;
    Some(
        (0..CpuSet::MAX_CPU)
            .filter(|&c| current.is_set(c))
            .collect(),
    )
}

/// Lets the calling thread run on `cores` again (DPDK's EAL pins the thread that initialises
/// it to its main lcore; the daemon's main thread puts its own mask back). False when the
/// kernel refused or `cores` is empty.
pub fn restrict_to(cores: &[usize]) -> bool {
    if cores.is_empty() {
        return false;
    }
    let mut set = CpuSet::new();
    for &c in cores {
        set.set(c);
    }
    sched_setaffinity(None, &set).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn housekeeping_gets_the_cores_no_worker_takes() {
        assert_eq!(housekeeping_cores(&[0, 1], &[1]), [0]);
        assert_eq!(housekeeping_cores(&[0, 1, 2, 3], &[1, 3]), [0, 2]);
        assert_eq!(housekeeping_cores(&[0, 1], &[0, 1]), Vec::<usize>::new());
        // A worker on a core the process may not use takes nothing from the others.
        assert_eq!(housekeeping_cores(&[2, 3], &[1]), [2, 3]);
    }

    #[test]
    fn a_restricted_thread_and_its_children_stay_off_the_worker_core_which_can_still_pin() {
        // In a thread of its own, so the test harness's threads keep their mask.
        std::thread::spawn(|| {
            let before = sched_getaffinity(None).unwrap();
            let allowed: Vec<usize> = (0..CpuSet::MAX_CPU).filter(|&c| before.is_set(c)).collect();
            let Some(&worker) = allowed.last() else {
                return;
            };
            let Some(cores) = keep_off_worker_cores(&[worker]) else {
                assert_eq!(allowed.len(), 1, "only a one-core process keeps its mask");
                return;
            };
            assert_eq!(cores, housekeeping_cores(&allowed, &[worker]));
            let inherited = std::thread::spawn(|| sched_getaffinity(None).unwrap())
                .join()
                .unwrap();
            assert!(!inherited.is_set(worker));
            assert!(cores.iter().all(|&c| inherited.is_set(c)));
            let pinned = std::thread::spawn(move || {
                assert!(pin_to(worker));
                sched_getaffinity(None).unwrap()
            })
            .join()
            .unwrap();
            assert!(pinned.is_set(worker));
            assert_eq!(pinned.count(), 1);
        })
        .join()
        .unwrap();
    }
}
