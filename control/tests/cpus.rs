//! The threads of aftrd other than its workers leave the worker cores
//! (`control::cpus`, decision 0021), in a process of their own: placement is the whole
//! process's.

use control::cpus::{cores_of, keep_off};

#[test]
fn every_thread_but_the_pinned_workers_leaves_the_worker_cores() {
    let all = cores_of(0).unwrap();
    assert_eq!(keep_off(&[]).unwrap(), None, "no worker core: nothing to do");
    assert_eq!(keep_off(&all).unwrap(), None, "workers on every core: nothing left to move to");
    if all.len() < 2 {
        eprintln!("one core: no placement to check");
        return;
    }
    // In a process of its own (its file's only test), since it moves every thread of the
    // process: a "worker" pinned to the last core, a helper started before, one after.
    let worker_core = *all.last().unwrap();
    let rest: Vec<usize> = all.iter().copied().filter(|&c| c != worker_core).collect();
    let (pinned_tx, pinned_rx) = std::sync::mpsc::channel::<()>();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let worker = std::thread::spawn(move || {
        assert!(core_affinity::set_for_current(core_affinity::CoreId { id: worker_core }));
        pinned_tx.send(()).unwrap();
        go_rx.recv().unwrap();
        cores_of(0).unwrap()
    });
    let (go2_tx, go2_rx) = std::sync::mpsc::channel::<()>();
    let helper = std::thread::spawn(move || {
        go2_rx.recv().unwrap();
        cores_of(0).unwrap()
    });
    pinned_rx.recv_timeout(std::time::Duration::from_secs(10)).expect("the worker pinned itself");
    assert_eq!(keep_off(&[worker_core]).unwrap(), Some(rest.clone()));
    go_tx.send(()).unwrap();
    go2_tx.send(()).unwrap();
    assert_eq!(worker.join().unwrap(), [worker_core], "the worker keeps its core");
    assert_eq!(helper.join().unwrap(), rest, "a thread started before is moved");
    assert_eq!(cores_of(0).unwrap(), rest, "the calling thread is moved");
    let later = std::thread::spawn(|| cores_of(0).unwrap()).join().unwrap();
    assert_eq!(later, rest, "a thread started afterwards inherits the placement");
}
