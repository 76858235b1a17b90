//! [`ModelFormat`]: the model file formats `shoal-score` reads, their
//! user-facing names (the `format:` key of a `score` transform) and how a
//! format is told from a file when the user does not say.

use std::fmt;
use std::str::FromStr;

/// The file format of a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ModelFormat {
    /// ONNX (`.onnx`, a protobuf `ModelProto`), run by `tract-onnx`.
    Onnx,
    /// XGBoost's JSON model (`Booster.save_model("m.json")`).
    Xgboost,
    /// LightGBM's text model (`Booster.save_model("m.txt")`).
    Lightgbm,
}

impl ModelFormat {
    /// Every format, in the order error messages list them.
    pub const ALL: [ModelFormat; 3] = [
        ModelFormat::Onnx,
        ModelFormat::Xgboost,
        ModelFormat::Lightgbm,
    ];

    /// The name used in pipeline files: `onnx`, `xgboost` or `lightgbm`.
    pub fn name(self) -> &'static str {
        match self {
            ModelFormat::Onnx => "onnx",
            ModelFormat::Xgboost => "xgboost",
            ModelFormat::Lightgbm => "lightgbm",
        }
    }

    /// The format called `name` in a pipeline file (ASCII case-insensitive).
    pub fn from_name(name: &str) -> Option<ModelFormat> {
        ModelFormat::ALL
            .into_iter()
            .find(|f| f.name().eq_ignore_ascii_case(name))
    }

    /// `onnx | xgboost | lightgbm`, for hints.
    pub fn choices() -> &'static str {
        "onnx | xgboost | lightgbm"
    }

    /// Tell the format of a model file from its content and, failing that,
    /// its extension (lower-case, without the dot). `None` when neither is
    /// conclusive: the caller should ask for an explicit format.
    ///
    /// * text starting with `{` is XGBoost JSON, text whose first line is
    ///   `tree` is LightGBM;
    /// * a file starting with the protobuf tag of `ModelProto`'s first
    ///   field (`ir_version`, byte `0x08`) is ONNX;
    /// * otherwise the extension: `.onnx`, `.json` (XGBoost), `.txt`
    ///   (LightGBM).
    pub fn detect(bytes: &[u8], extension: Option<&str>) -> Option<ModelFormat> {
        // 0x08 (a control character) never starts a text model.
        if bytes.first() == Some(&0x08) {
            return Some(ModelFormat::Onnx);
        }
        if let Ok(text) = std::str::from_utf8(bytes) {
            let start = text.trim_start();
            if start.starts_with('{') {
                return Some(ModelFormat::Xgboost);
            }
            if start.lines().next().map(str::trim) == Some("tree") {
                return Some(ModelFormat::Lightgbm);
            }
        }
        match extension {
            Some("onnx") => Some(ModelFormat::Onnx),
            Some("json") => Some(ModelFormat::Xgboost),
            Some("txt") => Some(ModelFormat::Lightgbm),
            _ => None,
        }
    }
}

impl fmt::Display for ModelFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ModelFormat::Onnx => "ONNX",
            ModelFormat::Xgboost => "XGBoost",
            ModelFormat::Lightgbm => "LightGBM",
        })
    }
}

/// The error of [`ModelFormat::from_str`]: the name is not a format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown model format {0:?}: expected one of onnx | xgboost | lightgbm")]
pub struct UnknownFormatName(pub String);

impl FromStr for ModelFormat {
    type Err = UnknownFormatName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ModelFormat::from_name(s).ok_or_else(|| UnknownFormatName(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for f in ModelFormat::ALL {
            assert_eq!(f.name().parse::<ModelFormat>(), Ok(f));
        }
        assert_eq!(
            ModelFormat::from_name("XGBoost"),
            Some(ModelFormat::Xgboost)
        );
        let e = "tensorflow".parse::<ModelFormat>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown model format \"tensorflow\": expected one of onnx | xgboost | lightgbm"
        );
    }

    #[test]
    fn detection_prefers_content_then_extension() {
        use ModelFormat::*;
        assert_eq!(
            ModelFormat::detect(b"  {\"learner\":", Some("txt")),
            Some(Xgboost)
        );
        assert_eq!(
            ModelFormat::detect(b"tree\nversion=v4", None),
            Some(Lightgbm)
        );
        assert_eq!(
            ModelFormat::detect(b"\x08\x08\x12\x07skl2onnx\xff", None),
            Some(Onnx)
        );
        assert_eq!(ModelFormat::detect(b"\x00\x01", Some("onnx")), Some(Onnx));
        assert_eq!(ModelFormat::detect(b"hello", Some("json")), Some(Xgboost));
        assert_eq!(ModelFormat::detect(b"hello", Some("txt")), Some(Lightgbm));
        assert_eq!(ModelFormat::detect(b"hello", Some("bin")), None);
        assert_eq!(ModelFormat::detect(b"\x00\xff", None), None);
        assert_eq!(ModelFormat::detect(b"", None), None);
    }
}
