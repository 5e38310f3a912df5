//! The simulated world's randomness and network: one seeded generator, and
//! links between replicas that drop, duplicate, delay (and so reorder) and
//! partition messages as the fault schedule says.

use crate::consensus::NodeId;
use crate::rng::SplitMix64;
use std::collections::BTreeSet;

/// Every random choice of a run comes from one of these, seeded by the
/// run's seed, so a seed replays the run exactly.
#[derive(Clone, Debug)]
pub struct Rng(SplitMix64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(SplitMix64::new(seed))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Uniform in `lo..=hi`.
    pub fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// How links behave right now.
#[derive(Clone, Debug, Default)]
pub struct LinkFaults {
    pub loss: f64,
    pub duplicate: f64,
    /// Extra delay drawn up to this many ms, which reorders messages.
    pub jitter_ms: u64,
}

/// The network between replicas: latency, faults, and which pairs are cut.
#[derive(Clone, Debug)]
pub struct Network {
    pub base_latency_ms: u64,
    pub faults: LinkFaults,
    /// Directed pairs that cannot talk.
    cut: BTreeSet<(NodeId, NodeId)>,
}

impl Network {
    pub fn new(base_latency_ms: u64) -> Network {
        Network { base_latency_ms, faults: LinkFaults::default(), cut: BTreeSet::new() }
    }

    /// The delays after which copies of a message from `from` to `to`
    /// arrive: none if lost or cut, two if duplicated.
    pub fn deliveries(&self, from: NodeId, to: NodeId, rng: &mut Rng) -> Vec<u64> {
        if self.cut.contains(&(from, to)) || rng.chance(self.faults.loss) {
            return Vec::new();
        }
        let (base, jitter) = (self.base_latency_ms, self.faults.jitter_ms);
        let first = base + rng.between(0, jitter);
        if rng.chance(self.faults.duplicate) {
            vec![first, base + rng.between(0, jitter)]
        } else {
            vec![first]
        }
    }

    /// Cuts every link between the two groups, both ways.
    pub fn split(&mut self, a: &[NodeId], b: &[NodeId]) {
        for &x in a {
            for &y in b {
                self.cut.insert((x, y));
                self.cut.insert((y, x));
            }
        }
    }

    pub fn heal(&mut self) {
        self.cut.clear();
    }
}
