//! Model scoring for Shoal's `score` transform: ONNX (through `tract-onnx`)
//! and XGBoost JSON / LightGBM text (through a columnar tree evaluator of
//! our own), batch at a time over Arrow.
//!
//! The entry type is [`Model`], whatever the format:
//! [`Model::load`] reads a file (the [`ModelFormat`] given, or told from the
//! file), [`Model::check_schema`] validates the feature columns at plan time,
//! [`Model::output_fields`] names the output columns, and
//! [`Model::score_batch`] gathers the feature columns into one contiguous
//! matrix and scores the whole batch at once. [`ReloadingModel`] follows
//! changes of the file in the background and swaps a valid new model in
//! atomically.
//!
//! Underneath, [`TreeModel`] is the tree evaluator: the two loaders
//! ([`xgboost`], [`lightgbm`]) translate their format's split semantics
//! (XGBoost: `f32(x) < t`; LightGBM: `x <= t` with three ways to treat
//! missing values) into one flattened [`Forest`] with a single rule,
//! `x < threshold`, missing follows `default_left`. The forest walks every
//! tree over blocks of rows, several rows in lockstep, without allocating;
//! the [`Objective`]'s [`Link`] then turns margins into scores.
//! [`OnnxModel`] wraps an optimised tract plan with a symbolic batch
//! dimension. Scores match the reference libraries (see the parity tests
//! and `models/README.md`).
//!
//! Errors are [`ScoreError`]s; [`ScoreError::domain`] tells whether the
//! model/input ([`ErrorDomain::User`]) or the OS ([`ErrorDomain::External`])
//! is at fault.

mod error;
mod forest;
mod format;
mod gather;
pub mod lightgbm;
mod model;
mod objective;
mod onnx;
mod onnx_trees;
mod operator;
mod reload;
mod tree_model;
pub mod xgboost;

pub use error::{ErrorDomain, Result, ScoreError};
pub use forest::Forest;
pub use format::{ModelFormat, UnknownFormatName};
pub use model::Model;
pub use objective::{Link, Objective, Task};
pub use onnx::OnnxModel;
pub use operator::{ModelHandle, ScoreOperator};
pub use reload::{ReloadOptions, ReloadingModel, Validator};
pub use tree_model::TreeModel;
