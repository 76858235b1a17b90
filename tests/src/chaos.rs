//! Seeds for the chaos tests: every chaos test runs its scenario once per
//! seed and reports every failing seed, so a search over hundreds of seeds
//! (`scripts/chaos-search.sh`) finds the rare crash moments.
//!
//! * `SHOAL_CHAOS_SEED=S` — replay seed `S` only (with `SHOAL_CHAOS_RUNS=N`:
//!   seeds `S..S+N`).
//! * `SHOAL_CHAOS_RUNS=N` — run `N` seeds (default [`DEFAULT_RUNS`]) starting
//!   at the test's base seed.
//! * `SHOAL_CHAOS_KEEP=DIR` — copy the working directory of a failing seed
//!   (data dir, output, each run's log) to `DIR/<test>-<seed>` for a
//!   post-mortem.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

/// Seeds a chaos test runs by default (CI).
pub const DEFAULT_RUNS: u64 = 3;

/// xorshift64*: a tiny seeded generator for kill delays (no crate needed
/// for a test driver).
pub struct Rng(pub u64);

impl Rng {
    /// A generator for `seed`: the seed goes through a SplitMix64 step
    /// first, so neighbouring seeds (100 and 101) give unrelated sequences,
    /// and the state is never zero.
    pub fn new(seed: u64) -> Self {
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Self((z ^ (z >> 31)) | 1)
    }

    /// The next value.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|s| s.trim().parse().ok())
}

/// The seeds to run: `SHOAL_CHAOS_SEED` (one, or `SHOAL_CHAOS_RUNS` from
/// it), else `SHOAL_CHAOS_RUNS` (default [`DEFAULT_RUNS`]) from `base`.
pub fn seeds(base: u64) -> Vec<u64> {
    match env_u64("SHOAL_CHAOS_SEED") {
        Some(s) => (0..env_u64("SHOAL_CHAOS_RUNS").unwrap_or(1))
            .map(|i| s.wrapping_add(i))
            .collect(),
        None => (0..env_u64("SHOAL_CHAOS_RUNS").unwrap_or(DEFAULT_RUNS).max(1))
            .map(|i| base.wrapping_add(i))
            .collect(),
    }
}

/// Runs `scenario` for every seed of [`seeds`]`(base)`, each in a fresh
/// working directory from `workdir`. A failing seed does not stop the
/// others; at the end every failure is printed with its seed (and
/// `SHOAL_CHAOS_SEED=… cargo test …` to replay it) and the test fails.
pub fn for_each_seed(
    test: &str,
    base: u64,
    workdir: impl Fn() -> tempfile::TempDir,
    scenario: impl Fn(&Path, u64),
) {
    let seeds = seeds(base);
    let mut failed: Vec<(u64, String)> = Vec::new();
    for (i, seed) in seeds.iter().copied().enumerate() {
        let dir = workdir();
        let result = catch_unwind(AssertUnwindSafe(|| scenario(dir.path(), seed)));
        match result {
            Ok(()) => println!("chaos {test}: seed {seed} ok ({}/{})", i + 1, seeds.len()),
            Err(panic) => {
                let msg = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_else(|| "panic".into());
                println!("chaos {test}: seed {seed} FAILED: {msg}");
                if let Ok(keep) = std::env::var("SHOAL_CHAOS_KEEP") {
                    let to = Path::new(&keep).join(format!("{test}-{seed}"));
                    let _ = std::process::Command::new("cp")
                        .arg("-a")
                        .arg(dir.path())
                        .arg(&to)
                        .status();
                    println!(
                        "chaos {test}: seed {seed}: working directory kept in {}",
                        to.display()
                    );
                }
                failed.push((seed, msg));
            }
        }
    }
    if !failed.is_empty() {
        let list: Vec<String> = failed
            .iter()
            .map(|(s, m)| format!("  seed {s}: {m}\n  replay: SHOAL_CHAOS_SEED={s} cargo test --workspace --test … {test}"))
            .collect();
        panic!(
            "{test}: {} of {} seeds failed:\n{}",
            failed.len(),
            seeds.len(),
            list.join("\n")
        );
    }
}
