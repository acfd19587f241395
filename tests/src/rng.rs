//! Randomness for the testbed and the tests: OS-random tokens, names and seeds, and the small
//! seeded generator whose printed seed replays a run (`KCS_MODEL_SEED`, `KCS_FAULT_SEED`).

/// `n` random bytes from the OS, hex-encoded.
pub fn random_hex(n: usize) -> String {
    let mut buf = vec![0u8; n];
    if getrandom::fill(&mut buf).is_err() {
        // The OS RNG is always there on Linux; fall back to something still unique per call.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        buf = nanos
            .to_le_bytes()
            .iter()
            .cycle()
            .take(n)
            .copied()
            .collect();
    }
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// A random u64 from the OS (a fresh seed).
pub fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    if getrandom::fill(&mut b).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        return nanos as u64;
    }
    u64::from_le_bytes(b)
}

/// xorshift64: small, fast and fully determined by its state, so a printed seed replays a run.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// Seeded through splitmix64: neighbouring seeds give unrelated streams; never stuck at zero.
    pub fn new(seed: u64) -> Rng {
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Rng((z ^ (z >> 31)) | 1)
    }

    /// The seed is the state itself (the fault suite's printed `KCS_FAULT_SEED`s replay this way).
    pub fn from_state(state: u64) -> Rng {
        Rng(state)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform-ish in `0..n` (`0` for `n` = 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// One of `items`, which must not be empty (the callers draw from fixed, non-empty lists).
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_hex_has_the_asked_length_and_varies() {
        let a = random_hex(16);
        assert_eq!(a.len(), 32);
        assert_ne!(a, random_hex(16));
    }

    #[test]
    fn a_seed_replays_its_stream_and_neighbours_differ() {
        let draw = |mut r: Rng| (0..8).map(|_| r.below(1000)).collect::<Vec<_>>();
        assert_eq!(draw(Rng::new(42)), draw(Rng::new(42)));
        assert_ne!(draw(Rng::new(42)), draw(Rng::new(43)));
        // The raw state is xorshift64 (13, 7, 17), as the fault suite always ran it.
        assert_eq!(Rng::from_state(1).next_u64(), 1_082_269_761);
    }

    #[test]
    fn below_and_pick_stay_in_range() {
        let mut r = Rng::new(7);
        assert_eq!(r.below(0), 0);
        assert_eq!(r.pick(&[5]), &5);
        assert!((0..100).all(|_| r.below(3) < 3));
    }
}
