//! The current [`Runtime`], swappable: readers take a snapshot without a
//! lock (`arc-swap`), subsystems that must act on a change (start or stop a
//! mailbox's fetcher, register its metrics) watch the generation number.

use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::sync::watch;

use super::Runtime;

pub struct Live {
    current: ArcSwap<Runtime>,
    generation: watch::Sender<u64>,
}

impl Live {
    pub fn new(runtime: Runtime) -> Arc<Live> {
        let (generation, _) = watch::channel(runtime.generation);
        Arc::new(Live { current: ArcSwap::from_pointee(runtime), generation })
    }

    /// The snapshot to use for one session, delivery, poll or request.
    pub fn get(&self) -> Arc<Runtime> {
        self.current.load_full()
    }

    /// Changes to the generation number, one per published snapshot.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    /// Makes `runtime` current; what already holds the old one keeps it.
    pub fn publish(&self, runtime: Runtime) {
        let generation = runtime.generation;
        self.current.store(Arc::new(runtime));
        self.generation.send_replace(generation);
    }
}
