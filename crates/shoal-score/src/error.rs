//! The crate's error type, grouped by who is at fault, and the [`Result`] alias.
//!
//! Every fallible call in `shoal-score` returns [`ScoreError`]. Callers that
//! only need to decide what to do look at [`ScoreError::domain`]:
//!
//! * [`ErrorDomain::User`]: the model file is malformed or uses a feature the
//!   evaluator does not support, or the batch does not fit the model (wrong
//!   feature count, missing or non-numeric column). Fix the model or the
//!   pipeline; retrying will not help.
//! * [`ErrorDomain::External`]: the operating system failed to read the model
//!   file. May succeed on retry (e.g. during a hot reload that raced a write).
//! * [`ErrorDomain::Internal`]: a bug in `shoal-score`.

use std::path::PathBuf;

use arrow::datatypes::DataType;
use arrow::error::ArrowError;

use crate::format::ModelFormat;

/// `Result` with this crate's [`ScoreError`].
pub type Result<T, E = ScoreError> = std::result::Result<T, E>;

/// Who is at fault for a [`ScoreError`]; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorDomain {
    /// The model or the input is wrong: fix the file or the pipeline.
    User,
    /// The operating system failed: may be retried.
    External,
    /// A bug in `shoal-score`: please report it.
    Internal,
}

/// Everything that can go wrong loading a model or scoring a batch.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScoreError {
    // ---- user: the model file -------------------------------------------
    /// The file is neither XGBoost JSON nor LightGBM text.
    #[error("not a model this evaluator can read{}: {reason}", location(.path))]
    UnknownFormat {
        /// The file, when the model was loaded from one.
        path: Option<PathBuf>,
        /// What was seen instead.
        reason: String,
    },
    /// The file claims a format but its content is malformed or truncated.
    #[error("invalid {format} model{}: {message}", location(.path))]
    Malformed {
        /// The format being parsed.
        format: ModelFormat,
        /// The file, when the model was loaded from one.
        path: Option<PathBuf>,
        /// What is wrong, and where (tree and field).
        message: String,
    },
    /// The model is well-formed but uses something the evaluator does not
    /// implement (categorical splits, linear trees, another booster...).
    #[error("unsupported {format} model{}: {what}", location(.path))]
    Unsupported {
        /// The format being parsed.
        format: ModelFormat,
        /// The file, when the model was loaded from one.
        path: Option<PathBuf>,
        /// The unsupported feature.
        what: String,
    },

    // ---- user: the input ------------------------------------------------
    /// The caller passed a different number of features than the model uses.
    #[error("the model uses {expected} features but {got} were given")]
    FeatureCount {
        /// The model's feature count.
        expected: usize,
        /// The number of feature columns given.
        got: usize,
    },
    /// Feature columns passed to `predict` have different lengths.
    #[error("feature {feature} has {got} rows but feature 0 has {expected}")]
    RowCount {
        /// Index of the offending feature.
        feature: usize,
        /// Rows in feature 0.
        expected: usize,
        /// Rows in the offending feature.
        got: usize,
    },
    /// The model failed while scoring a batch (ONNX: tract reported an
    /// error running the graph).
    #[error("the {format} model failed on a batch: {message}")]
    Inference {
        /// The model's format.
        format: ModelFormat,
        /// What the inference engine reported.
        message: String,
    },
    /// The file's format cannot be told and none was given.
    #[error(
        "cannot tell the format of model {}: {reason}; set `format: onnx | xgboost | lightgbm`",
        .path.display()
    )]
    FormatNotInferred {
        /// The file.
        path: PathBuf,
        /// Why the content and extension were not enough.
        reason: String,
    },
    /// A named feature column is not in the batch.
    #[error("feature column {name:?} is not in the batch (columns: {available})")]
    ColumnNotFound {
        /// The column asked for.
        name: String,
        /// The batch's column names, comma-separated.
        available: String,
    },
    /// A feature column has a type that cannot be read as a number.
    #[error("feature column {name:?} has type {data_type}, which is not numeric")]
    ColumnType {
        /// The column.
        name: String,
        /// Its type.
        data_type: DataType,
    },

    // ---- external -------------------------------------------------------
    /// Reading the model file failed.
    #[error("cannot read model {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    // ---- internal -------------------------------------------------------
    /// An Arrow kernel failed where it should not have.
    #[error("internal error (this is a bug in shoal-score, please report it): arrow: {0}")]
    Arrow(#[from] ArrowError),
}

fn location(path: &Option<PathBuf>) -> String {
    match path {
        Some(p) => format!(" {}", p.display()),
        None => String::new(),
    }
}

impl ScoreError {
    /// Who is at fault.
    pub fn domain(&self) -> ErrorDomain {
        match self {
            ScoreError::UnknownFormat { .. }
            | ScoreError::Malformed { .. }
            | ScoreError::Unsupported { .. }
            | ScoreError::FeatureCount { .. }
            | ScoreError::RowCount { .. }
            | ScoreError::ColumnNotFound { .. }
            | ScoreError::ColumnType { .. }
            | ScoreError::Inference { .. }
            | ScoreError::FormatNotInferred { .. } => ErrorDomain::User,
            ScoreError::Io { .. } => ErrorDomain::External,
            ScoreError::Arrow(_) => ErrorDomain::Internal,
        }
    }

    /// Whether retrying the same action may succeed.
    pub fn is_retryable(&self) -> bool {
        self.domain() == ErrorDomain::External
    }

    /// Attach the model file to a parse error raised on in-memory text.
    pub(crate) fn with_path(mut self, file: &std::path::Path) -> Self {
        if let ScoreError::Malformed { path, .. }
        | ScoreError::Unsupported { path, .. }
        | ScoreError::UnknownFormat { path, .. } = &mut self
        {
            *path = Some(file.to_path_buf());
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_and_messages() {
        let e = ScoreError::Malformed {
            format: ModelFormat::Lightgbm,
            path: None,
            message: "tree 2: no leaf_value".into(),
        }
        .with_path(std::path::Path::new("m.txt"));
        assert_eq!(e.domain(), ErrorDomain::User);
        assert!(!e.is_retryable());
        assert_eq!(
            e.to_string(),
            "invalid LightGBM model m.txt: tree 2: no leaf_value"
        );
        let io = ScoreError::Io {
            path: "x".into(),
            source: std::io::Error::other("boom"),
        };
        assert!(io.is_retryable());
    }
}
