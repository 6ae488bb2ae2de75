//! Where aftrd's threads run: each worker on its core (`worker-cores`, pinned by the
//! board), every other thread (hot backup, routes, the management socket, metrics,
//! logging) on the cores that no worker of this host has, so that none of them takes a
//! worker's core for a time slice (decision 0021). Once the board has started, every
//! thread of the process but the pinned workers is confined; threads started later
//! inherit the confinement of the thread that starts them.

use nix::sched::{CpuSet, sched_getaffinity, sched_setaffinity};
use nix::unistd::Pid;

use crate::config::Config;

/// The worker cores of every slot of `config` on the host of `slot` (slots without a
/// `host` share one).
pub fn worker_cores(config: &Config, slot: u32) -> Vec<usize> {
    let host = config.slots.get(&slot).and_then(|s| s.host.as_deref());
    config
        .slots
        .values()
        .filter(|s| s.host.as_deref() == host)
        .flat_map(|s| s.cores.iter().map(|&c| c as usize))
        .collect()
}

/// The cores thread `tid` (0: the calling thread) may run on.
pub fn cores_of(tid: i32) -> Result<Vec<usize>, String> {
    let set = sched_getaffinity(Pid::from_raw(tid)).map_err(|e| format!("the cores of thread {tid}: {e}"))?;
    Ok((0..CpuSet::count()).filter(|&c| set.is_set(c).unwrap_or(false)).collect())
}

/// Confines every thread of this process but those pinned to one of `workers` (the
/// workers) to the calling thread's cores less `workers`; returns those cores. `None`
/// when it leaves the threads as they were: none of those cores is a worker's, or
/// workers have all of them.
pub fn keep_off(workers: &[usize]) -> Result<Option<Vec<usize>>, String> {
    let mine = cores_of(0)?;
    let rest: Vec<usize> = mine.iter().copied().filter(|c| !workers.contains(c)).collect();
    if rest.len() == mine.len() || rest.is_empty() {
        return Ok(None);
    }
    let mut set = CpuSet::new();
    for &c in &rest {
        set.set(c).map_err(|e| format!("core {c}: {e}"))?;
    }
    let tasks = std::fs::read_dir("/proc/self/task").map_err(|e| format!("/proc/self/task: {e}"))?;
    for tid in tasks.filter_map(|t| t.ok()?.file_name().to_str()?.parse::<i32>().ok()) {
        // A thread that ended meanwhile has no cores to read: nothing to confine.
        let Ok(cores) = cores_of(tid) else { continue };
        if let [core] = cores[..]
            && workers.contains(&core)
        {
            continue;
        }
        sched_setaffinity(Pid::from_raw(tid), &set)
            .map_err(|e| format!("confining thread {tid} to cores {rest:?}: {e}"))?;
    }
    Ok(Some(rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_cores_are_those_of_every_slot_on_the_same_host() {
        let text = "slot 1\n worker-cores 1\nslot 2\n worker-cores 2 3\nslot 3\n host b\n worker-cores 4\n";
        let (c, _) = crate::parse::parse(text).unwrap();
        let mut cores = worker_cores(&c, 1);
        cores.sort();
        assert_eq!(cores, [1, 2, 3]);
        assert_eq!(worker_cores(&c, 3), [4]);
    }
}
