//! Columnar scoring of tree-ensemble models: XGBoost JSON and LightGBM text.
//!
//! The entry type is [`TreeModel`]: [`TreeModel::load`] reads a model file
//! (the format is told from its content), and
//! [`TreeModel::predict_batch`] scores a whole Arrow `RecordBatch`,
//! returning one `Float64` column per output (`score`, or one probability
//! per class). [`TreeModel::predict`] does the same over plain `f64`
//! columns. Scores match the reference libraries' own `predict` (see the
//! parity tests and `models/README.md`).
//!
//! Inside, the two loaders ([`xgboost`], [`lightgbm`]) translate their
//! format's split semantics (XGBoost: `f32(x) < t`; LightGBM: `x <= t` with
//! three ways to treat missing values) into one flattened [`Forest`] with a
//! single rule, `x < threshold`, missing follows `default_left`. The forest
//! walks every tree over blocks of rows, several rows in lockstep, without
//! allocating; the [`Objective`]'s [`Link`] then turns margins into scores.
//!
//! Errors are [`ScoreError`]s; [`ScoreError::domain`] tells whether the
//! model/input ([`ErrorDomain::User`]) or the OS ([`ErrorDomain::External`])
//! is at fault.

mod error;
mod forest;
mod gather;
pub mod lightgbm;
mod model;
mod objective;
pub mod xgboost;

pub use error::{ErrorDomain, Result, ScoreError};
pub use forest::Forest;
pub use model::{ModelFormat, TreeModel};
pub use objective::{Link, Objective, Task};
