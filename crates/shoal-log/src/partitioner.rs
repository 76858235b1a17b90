//! Choosing a partition for a record, exactly as Kafka's default partitioner
//! does for keyed records: `toPositive(murmur2(key)) % numPartitions`, where
//! `murmur2` is Kafka's 32-bit MurmurHash2 with seed `0x9747b28c` and
//! `toPositive(n) = n & 0x7fffffff`. Records without a key go round-robin.
//!
//! Matching Kafka matters: a topic produced by Shoal and one produced by a
//! Kafka client put the same key in the same partition, so per-key order and
//! co-partitioning survive moving a job between the embedded log and Kafka.

use std::sync::atomic::{AtomicU32, Ordering};

/// Kafka's murmur2 seed.
pub const KAFKA_MURMUR2_SEED: u32 = 0x9747_b28c;

/// Kafka's `Utils.murmur2`: 32-bit MurmurHash2 of `data`, as a Java `int`.
pub fn murmur2(data: &[u8]) -> i32 {
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let len = data.len();
    let mut h: u32 = KAFKA_MURMUR2_SEED ^ (len as u32);
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    // Java: switch (length % 4) with fall-through; bytes are sign-extended
    // then masked with 0xff, i.e. taken as unsigned.
    if rest.len() >= 3 {
        h ^= (rest[2] as u32) << 16;
    }
    if rest.len() >= 2 {
        h ^= (rest[1] as u32) << 8;
    }
    if !rest.is_empty() {
        h ^= rest[0] as u32;
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// Kafka's `Utils.toPositive`.
#[inline]
pub fn to_positive(n: i32) -> u32 {
    (n & 0x7fff_ffff) as u32
}

/// The partition Kafka's default partitioner picks for `key`.
#[inline]
pub fn partition_for_key(key: &[u8], partitions: u32) -> u32 {
    to_positive(murmur2(key)) % partitions.max(1)
}

/// Round-robin partition choice for records without a key.
#[derive(Debug, Default)]
pub struct RoundRobin(AtomicU32);

impl RoundRobin {
    /// The next partition in turn.
    #[inline]
    pub fn next(&self, partitions: u32) -> u32 {
        self.0.fetch_add(1, Ordering::Relaxed) % partitions.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Kafka's own vectors, `org.apache.kafka.common.utils.UtilsTest#testMurmur2`.
    #[test]
    fn kafka_utils_test_vectors() {
        let cases: [(&[u8], i32); 6] = [
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            (b"abc", 479_470_107),
        ];
        for (key, want) in cases {
            assert_eq!(murmur2(key), want, "{}", String::from_utf8_lossy(key));
        }
    }

    #[test]
    fn partition_uses_to_positive_modulo() {
        // toPositive(-790332482) = 1357151166; 1357151166 % 50 = 16.
        assert_eq!(to_positive(murmur2(b"foobar")), 1_357_151_166);
        assert_eq!(partition_for_key(b"foobar", 50), 16);
        assert_eq!(to_positive(i32::MIN), 0);
    }

    #[test]
    fn round_robin_cycles() {
        let rr = RoundRobin::default();
        let got: Vec<u32> = (0..7).map(|_| rr.next(3)).collect();
        assert_eq!(got, [0, 1, 2, 0, 1, 2, 0]);
    }
}
