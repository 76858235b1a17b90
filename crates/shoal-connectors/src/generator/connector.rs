//! `type: generator` — its config and how it plugs into a pipeline.

use std::sync::Arc;

use serde::Deserialize;
use shoal_dsl::connector::{ConfigCx, FromYaml, RawEventTime, Scalar, SourceConfig};
use shoal_dsl::{DslError, EventTimeSpec};

use super::{TransactionGenerator, generator_schema};
use crate::connector::{
    BuildCx, PlanCx, PlannedSource, SourceConnector, SourceFactory, SourceTask,
};

/// `type: generator`.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneratorConfig {
    /// `profile:` which records to make; default `transactions`.
    pub profile: GeneratorProfile,
    /// `seed:` of the random generator; default 0. Same seed, same records.
    pub seed: u64,
    /// `count:` records to make; `None` = unbounded.
    pub count: Option<u64>,
    /// `rate:` records per second (`50000/s` or a number); `None` = as fast as possible.
    pub rate: Option<f64>,
    /// `batch_size:` records per batch; default 8192.
    pub batch_size: usize,
    /// `parallelism:` generator tasks; default 1.
    pub parallelism: usize,
    /// `event_time:`.
    pub event_time: Option<EventTimeSpec>,
    /// `clock: wall` — event times are the wall clock when a record is made
    /// (in order), for measuring event-to-output latency; default
    /// `synthetic` (a fixed start, 10 ms per record, up to 2 s out of order,
    /// so the same seed gives the same records).
    pub wall_clock: bool,
}

/// What a generator makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum GeneratorProfile {
    /// Card transactions: `txn_id, card_id, merchant_id, amount, country, ts`.
    #[default]
    Transactions,
    /// The Nexmark auction stream: persons, auctions and bids (1 : 3 : 46)
    /// in one table with an `event_type` column.
    Nexmark,
}

impl GeneratorProfile {
    /// The YAML name.
    pub fn name(&self) -> &'static str {
        match self {
            GeneratorProfile::Transactions => "transactions",
            GeneratorProfile::Nexmark => "nexmark",
        }
    }
}

/// The keys of `type: generator`, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGenerator {
    profile: Option<String>,
    seed: Option<u64>,
    count: Option<u64>,
    rate: Option<Scalar>,
    batch_size: Option<u64>,
    parallelism: Option<u64>,
    event_time: Option<RawEventTime>,
    clock: Option<String>,
}

impl FromYaml for GeneratorConfig {
    type Raw = RawGenerator;

    fn from_raw(
        g: RawGenerator,
        cx: &ConfigCx<'_>,
        section: &str,
        id: &str,
    ) -> Result<Self, DslError> {
        let at = |k: &'static str| -> [&str; 3] { [section, id, k] };
        let profile = match g.profile {
            Some(p) => cx.choice(
                &at("profile"),
                &p,
                &[
                    ("transactions", GeneratorProfile::Transactions),
                    ("nexmark", GeneratorProfile::Nexmark),
                ],
                "generator profile",
            )?,
            None => GeneratorProfile::Transactions,
        };
        let rate = cx.rate(&at("rate"), g.rate)?;
        let wall_clock = match g.clock {
            Some(c) => cx.choice(
                &at("clock"),
                &c,
                &[("synthetic", false), ("wall", true)],
                "clock",
            )?,
            None => false,
        };
        Ok(GeneratorConfig {
            wall_clock,
            profile,
            seed: g.seed.unwrap_or(0),
            count: g.count,
            rate,
            batch_size: cx.batch_size(&at("batch_size"), g.batch_size)?,
            parallelism: cx.parallelism(&at("parallelism"), g.parallelism)?,
            event_time: cx.event_time(id, g.event_time, None)?,
        })
    }
}

impl SourceConfig for GeneratorConfig {
    fn kind(&self) -> &'static str {
        Self::TYPE
    }

    fn parallelism(&self) -> usize {
        self.parallelism
    }

    fn event_time(&self) -> Option<&EventTimeSpec> {
        self.event_time.as_ref()
    }
}

impl SourceConnector for GeneratorConfig {
    const TYPE: &'static str = "generator";

    fn plan(&self, _cx: &PlanCx<'_>) -> Result<PlannedSource, DslError> {
        let detail = format!(
            "profile={} seed={} count={} rate={}",
            self.profile.name(),
            self.seed,
            self.count
                .map_or("unbounded".to_string(), |c| c.to_string()),
            self.rate.map_or("max".to_string(), |r| format!("{r}/s"))
        );
        Ok(PlannedSource {
            schema: generator_schema(self.profile),
            detail,
            task: Arc::new(self.clone()),
        })
    }
}

impl SourceTask for GeneratorConfig {
    fn instances(&self, _cx: &BuildCx<'_>) -> shoal_runtime::Result<SourceFactory> {
        let spec = self.clone();
        Ok(Box::new(move |_| {
            Ok(Box::new(TransactionGenerator::new(&spec)) as Box<dyn shoal_runtime::Source>)
        }))
    }
}
