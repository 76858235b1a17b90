//! Loading LightGBM's text model format (`Booster.save_model("m.txt")`).
//!
//! The file is a header of `key=value` lines (`max_feature_idx`,
//! `objective`, `num_class`, `num_tree_per_iteration`, `feature_names`,
//! `tree_sizes`, and a bare `average_output` line for random forests), then
//! one `Tree=N` section per tree, then `end of trees` and parameters that
//! are not needed for prediction.
//!
//! In a tree section with `num_leaves = L`, internal nodes are numbered
//! `0..L-1` (the root is 0) and described by `split_feature`, `threshold`,
//! `decision_type`, `left_child` and `right_child`; a negative child `c` is
//! leaf `!c` (`-c - 1`), whose value is `leaf_value[!c]`. Leaf values already
//! include the learning rate (the `shrinkage` line is informational). Tree
//! `i` adds to class `i % num_tree_per_iteration`.
//!
//! # Semantics reproduced
//!
//! `decision_type` is a bit set: bit 0 categorical (rejected here), bit 1
//! default-left, bits 2–3 the missing type:
//!
//! * `None` (0): `NaN` is read as `0.0`, then compared;
//! * `Zero` (1): `NaN` and any `|x| <= 1e-35` (LightGBM's zero threshold,
//!   an `f32` constant) go the default way;
//! * `NaN` (2): `NaN` goes the default way.
//!
//! Anything else goes left when `x <= threshold`. The forest compares with
//! `<`, so thresholds are moved up by one `f64` ulp; a `Zero` node becomes
//! three plain nodes (below the zero band / inside it / the real split).

use std::collections::HashMap;

use crate::error::{Result, ScoreError};
use crate::forest::{Forest, Node, Tree, threshold_for_le};
use crate::format::ModelFormat;
use crate::objective::{Link, Objective, Task};
use crate::tree_model::TreeModel;

/// `|x| <= ZERO` counts as zero for `Zero` missing type (LightGBM's
/// `kZeroThreshold`, a `float`).
const ZERO: f64 = 1e-35_f32 as f64;

fn malformed(message: impl Into<String>) -> ScoreError {
    ScoreError::Malformed {
        format: ModelFormat::Lightgbm,
        path: None,
        message: message.into(),
    }
}

fn unsupported(what: impl Into<String>) -> ScoreError {
    ScoreError::Unsupported {
        format: ModelFormat::Lightgbm,
        path: None,
        what: what.into(),
    }
}

/// One `key=value` section (the header or a tree).
struct Section<'a> {
    /// `"header"` or `"tree 3"`, for messages.
    name: String,
    values: HashMap<&'a str, &'a str>,
}

impl<'a> Section<'a> {
    fn get(&self, key: &str) -> Option<&'a str> {
        self.values.get(key).copied()
    }

    fn require(&self, key: &str) -> Result<&'a str> {
        self.get(key)
            .ok_or_else(|| malformed(format!("{}: no {key}= line", self.name)))
    }

    fn number<T: std::str::FromStr>(&self, key: &str) -> Result<T> {
        let raw = self.require(key)?;
        raw.trim()
            .parse()
            .map_err(|_| malformed(format!("{}: {key}={raw} is not a valid number", self.name)))
    }

    /// A space-separated list that must have `len` entries.
    fn list<T: std::str::FromStr>(&self, key: &str, len: usize) -> Result<Vec<T>> {
        let raw = self.require(key)?;
        let mut out = Vec::with_capacity(len);
        for (i, item) in raw.split_ascii_whitespace().enumerate() {
            out.push(item.parse().map_err(|_| {
                malformed(format!(
                    "{}: {key} entry {i} ({item:?}) is not a valid number",
                    self.name
                ))
            })?);
        }
        if out.len() != len {
            return Err(malformed(format!(
                "{}: {key} has {} entries, expected {len}",
                self.name,
                out.len()
            )));
        }
        Ok(out)
    }
}

/// Split the text into the header and the tree sections, checking that the
/// trees are complete.
fn sections(text: &str) -> Result<(Section<'_>, Vec<Section<'_>>)> {
    let mut lines = text.lines().map(str::trim_end);
    if lines.next().map(str::trim) != Some("tree") {
        return Err(malformed("the first line is not `tree`"));
    }
    let mut header = Section {
        name: "header".into(),
        values: HashMap::new(),
    };
    let mut trees: Vec<Section> = Vec::new();
    let mut ended = false;
    for line in lines {
        if line == "end of trees" {
            ended = true;
            break;
        }
        if line.is_empty() {
            continue;
        }
        let (key, value) = line.split_once('=').unwrap_or((line, ""));
        if key == "Tree" {
            let expected = trees.len();
            if value.trim().parse::<usize>().ok() != Some(expected) {
                return Err(malformed(format!(
                    "expected Tree={expected}, found {line:?}"
                )));
            }
            trees.push(Section {
                name: format!("tree {expected}"),
                values: HashMap::new(),
            });
            continue;
        }
        let section = trees.last_mut().unwrap_or(&mut header);
        section.values.insert(key, value);
    }
    if !ended {
        return Err(malformed(format!(
            "no `end of trees` line: the file is truncated (after {} trees)",
            trees.len()
        )));
    }
    if let Some(sizes) = header.get("tree_sizes") {
        let declared = sizes.split_ascii_whitespace().count();
        if declared != trees.len() {
            return Err(malformed(format!(
                "tree_sizes lists {declared} trees but the file has {}",
                trees.len()
            )));
        }
    }
    Ok((header, trees))
}

/// The objective line, e.g. `binary sigmoid:1` or `multiclass num_class:3`.
fn objective(line: &str, num_class: usize) -> Result<Objective> {
    let mut words = line.split_ascii_whitespace();
    let name = words.next().unwrap_or("");
    let mut params = HashMap::new();
    let mut flags = Vec::new();
    for w in words {
        match w.split_once(':') {
            Some((k, v)) => {
                params.insert(k, v);
            }
            None => flags.push(w),
        }
    }
    if !flags.is_empty() {
        // e.g. `regression sqrt`: the model predicts a transformed target.
        return Err(unsupported(format!(
            "objective option(s) {flags:?} in {line:?}"
        )));
    }
    let param = |key: &str, default: f64| -> Result<f64> {
        params.get(key).map_or(Ok(default), |v| {
            v.parse()
                .map_err(|_| malformed(format!("objective {line:?}: {key}:{v} is not a number")))
        })
    };
    let sigmoid = Link::Sigmoid {
        scale: param("sigmoid", 1.0)?,
    };
    let (task, link) = match name {
        "binary" => (Task::BinaryClassification, sigmoid),
        "cross_entropy" | "xentropy" => (Task::BinaryClassification, Link::Sigmoid { scale: 1.0 }),
        "regression" | "regression_l2" | "regression_l1" | "huber" | "fair" | "quantile"
        | "mape" => (Task::Regression, Link::Identity),
        "poisson" | "gamma" | "tweedie" => (Task::Regression, Link::Exp),
        "multiclass" | "multiclassova" => {
            let k = param("num_class", num_class as f64)? as usize;
            if k < 2 || k != num_class {
                return Err(malformed(format!(
                    "objective {line:?} disagrees with num_class={num_class}"
                )));
            }
            let link = if name == "multiclass" {
                Link::Softmax
            } else {
                sigmoid
            };
            (Task::Multiclass { classes: k }, link)
        }
        other => return Err(unsupported(format!("objective {other:?}"))),
    };
    Ok(Objective::new(line, task, link))
}

/// Translate one tree section.
fn tree(section: &Section, output: usize) -> Result<Tree> {
    let num_leaves: usize = section.number("num_leaves")?;
    if num_leaves == 0 {
        return Err(malformed(format!("{}: num_leaves is 0", section.name)));
    }
    if section.get("is_linear").is_some_and(|v| v.trim() != "0") {
        return Err(unsupported(format!("{} is a linear tree", section.name)));
    }
    if section.get("num_cat").is_some_and(|v| v.trim() != "0") {
        return Err(unsupported(format!(
            "{} has categorical splits",
            section.name
        )));
    }
    let leaf_value: Vec<f64> = section.list("leaf_value", num_leaves)?;
    if num_leaves == 1 {
        return Ok(Tree {
            nodes: vec![Node::Leaf {
                value: leaf_value[0],
            }],
            output,
        });
    }
    let internal = num_leaves - 1;
    let feature: Vec<usize> = section.list("split_feature", internal)?;
    let threshold: Vec<f64> = section.list("threshold", internal)?;
    let decision: Vec<u8> = section.list("decision_type", internal)?;
    let left: Vec<i64> = section.list("left_child", internal)?;
    let right: Vec<i64> = section.list("right_child", internal)?;

    // Internal nodes keep their numbers; leaf j becomes node internal + j;
    // extra nodes for `Zero` splits go after the leaves.
    let index = |i: usize, c: i64| -> Result<usize> {
        let (idx, bound) = if c >= 0 {
            (c as usize, internal)
        } else {
            (!c as usize, num_leaves)
        };
        if idx >= bound {
            return Err(malformed(format!(
                "{}: node {i} has child {c}, out of range",
                section.name
            )));
        }
        Ok(if c >= 0 { idx } else { internal + idx })
    };
    let mut nodes = Vec::with_capacity(internal + num_leaves);
    let mut extra = Vec::new();
    for i in 0..internal {
        let (l, r) = (index(i, left[i])?, index(i, right[i])?);
        let d = decision[i];
        if d & 1 != 0 {
            return Err(unsupported(format!(
                "{} node {i} is a categorical split",
                section.name
            )));
        }
        let default_left = d & 2 != 0;
        let t = threshold[i];
        let f = feature[i];
        match (d >> 2) & 3 {
            // None: NaN is read as 0.0.
            0 => nodes.push(Node::Split {
                feature: f,
                threshold: threshold_for_le(t),
                default_left: 0.0 <= t,
                left: l,
                right: r,
            }),
            // Zero: NaN and the zero band go the default way.
            1 => {
                let base = internal + num_leaves + extra.len();
                let (split, band) = (base, base + 1);
                // Below the band: the real split. Otherwise (or NaN): `band`.
                nodes.push(Node::Split {
                    feature: f,
                    threshold: -ZERO,
                    default_left: false,
                    left: split,
                    right: band,
                });
                extra.push(Node::Split {
                    feature: f,
                    threshold: threshold_for_le(t),
                    default_left: false,
                    left: l,
                    right: r,
                });
                let default = if default_left { l } else { r };
                // In the band (or NaN): default. Above it: the real split.
                extra.push(Node::Split {
                    feature: f,
                    threshold: threshold_for_le(ZERO),
                    default_left: true,
                    left: default,
                    right: split,
                });
            }
            // NaN: NaN goes the default way.
            2 => nodes.push(Node::Split {
                feature: f,
                threshold: threshold_for_le(t),
                default_left,
                left: l,
                right: r,
            }),
            _ => {
                return Err(malformed(format!(
                    "{}: node {i} has decision_type {d} (missing type 3)",
                    section.name
                )));
            }
        }
    }
    nodes.extend(leaf_value.into_iter().map(|value| Node::Leaf { value }));
    nodes.extend(extra);
    Ok(Tree { nodes, output })
}

/// Parse a LightGBM text model.
pub(crate) fn parse(text: &str) -> Result<TreeModel> {
    let (header, sections) = sections(text)?;
    let max_feature_idx: i64 = header.number("max_feature_idx")?;
    let num_features = usize::try_from(max_feature_idx + 1)
        .map_err(|_| malformed(format!("max_feature_idx is {max_feature_idx}")))?;
    let num_class: usize = header
        .get("num_class")
        .map_or(Ok(1), |_| header.number("num_class"))?;
    let per_iteration: usize = header
        .get("num_tree_per_iteration")
        .map_or(Ok(1), |_| header.number("num_tree_per_iteration"))?;
    let objective = objective(header.require("objective")?, num_class)?;
    let outputs = objective.num_outputs();
    if per_iteration != outputs {
        return Err(malformed(format!(
            "num_tree_per_iteration is {per_iteration} for {outputs} outputs"
        )));
    }
    if sections.len() % per_iteration != 0 {
        return Err(malformed(format!(
            "{} trees is not a whole number of iterations of {per_iteration}",
            sections.len()
        )));
    }
    let average_over = header
        .values
        .contains_key("average_output")
        .then(|| (sections.len() / per_iteration).max(1) as f64);
    let feature_names = header
        .get("feature_names")
        .map(|s| s.split_ascii_whitespace().map(String::from).collect())
        .unwrap_or_default();

    let trees = sections
        .iter()
        .enumerate()
        .map(|(i, s)| tree(s, i % per_iteration))
        .collect::<Result<Vec<_>>>()?;
    let forest = Forest::new(num_features, vec![0.0; outputs], trees).map_err(malformed)?;
    Ok(TreeModel::from_parts(
        ModelFormat::Lightgbm,
        forest,
        objective,
        feature_names,
        average_over,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One split on feature 0 at `threshold` with `decision_type`, leaves
    /// -1 (left) / +1 (right), objective regression.
    fn stump(threshold: &str, decision_type: u8) -> String {
        format!(
            "tree\nversion=v4\nnum_class=1\nnum_tree_per_iteration=1\nlabel_index=0\n\
             max_feature_idx=1\nobjective=regression\nfeature_names=a b\n\
             feature_infos=[0:1] [0:1]\ntree_sizes=100\n\n\
             Tree=0\nnum_leaves=2\nnum_cat=0\nsplit_feature=0\nsplit_gain=1\n\
             threshold={threshold}\ndecision_type={decision_type}\nleft_child=-1\n\
             right_child=-2\nleaf_value=-1 1\nleaf_weight=1 1\nleaf_count=1 1\n\
             internal_value=0\ninternal_weight=0\ninternal_count=2\nis_linear=0\n\
             shrinkage=1\n\n\nend of trees\n\nfeature_importances:\na=1\n"
        )
    }

    fn predict(model: &TreeModel, xs: &[f64]) -> Vec<f64> {
        let zeros = vec![0.0; xs.len()];
        let mut out = Vec::new();
        model.predict(&[xs, &zeros], &mut out).unwrap();
        out
    }

    const NONE: u8 = 0;
    const DEFAULT_LEFT: u8 = 2;
    const ZERO_MISSING: u8 = 1 << 2;
    const NAN_MISSING: u8 = 2 << 2;

    #[test]
    fn less_or_equal_goes_left() {
        let m = parse(&stump("0.5", NAN_MISSING)).unwrap();
        assert_eq!(m.num_features(), 2);
        assert_eq!(m.feature_names(), ["a", "b"]);
        let t = 0.5f64;
        assert_eq!(
            predict(&m, &[t.next_down(), t, t.next_up()]),
            vec![-1.0, -1.0, 1.0]
        );
    }

    #[test]
    fn missing_type_nan_follows_default_left() {
        let right = parse(&stump("0.5", NAN_MISSING)).unwrap();
        let left = parse(&stump("0.5", NAN_MISSING | DEFAULT_LEFT)).unwrap();
        assert_eq!(predict(&right, &[f64::NAN, 0.0]), vec![1.0, -1.0]);
        assert_eq!(predict(&left, &[f64::NAN, 0.0]), vec![-1.0, -1.0]);
    }

    #[test]
    fn missing_type_none_reads_nan_as_zero() {
        // 0 <= 0.5: NaN goes left, whatever the default flag says.
        let m = parse(&stump("0.5", NONE)).unwrap();
        assert_eq!(predict(&m, &[f64::NAN]), vec![-1.0]);
        let m = parse(&stump("-0.5", NONE | DEFAULT_LEFT)).unwrap();
        assert_eq!(predict(&m, &[f64::NAN, -0.5, -0.4]), vec![1.0, -1.0, 1.0]);
    }

    #[test]
    fn missing_type_zero_sends_zero_and_nan_default() {
        // Threshold 0.5, default right: zero and NaN go right although
        // 0 <= 0.5 would send them left.
        let m = parse(&stump("0.5", ZERO_MISSING)).unwrap();
        let tiny = 1e-36;
        assert_eq!(
            predict(&m, &[f64::NAN, 0.0, -0.0, tiny, -tiny, 0.25, -0.25, 0.75]),
            vec![1.0, 1.0, 1.0, 1.0, 1.0, -1.0, -1.0, 1.0]
        );
        let m = parse(&stump("-0.5", ZERO_MISSING | DEFAULT_LEFT)).unwrap();
        assert_eq!(
            predict(&m, &[f64::NAN, 0.0, ZERO, -ZERO, 2.0 * ZERO, -0.75, -0.25]),
            vec![-1.0, -1.0, -1.0, -1.0, 1.0, -1.0, 1.0]
        );
    }

    #[test]
    fn errors_name_the_problem() {
        let err = |text: &str| parse(text).unwrap_err().to_string();
        let good = stump("0.5", NAN_MISSING);
        let cut = &good[..good.find("end of trees").unwrap()];
        assert!(err(cut).contains("truncated"), "{}", err(cut));
        let e = err(&good.replace("leaf_value=-1 1", "leaf_value=-1"));
        assert!(
            e.contains("tree 0: leaf_value has 1 entries, expected 2"),
            "{e}"
        );
        let e = err(&good.replace("leaf_value=-1 1", "leaf_value=-1 x"));
        assert!(e.contains("leaf_value entry 1"), "{e}");
        let e = err(&good.replace("decision_type=8", "decision_type=9"));
        assert!(e.contains("categorical"), "{e}");
        let e = err(&good.replace("right_child=-2", "right_child=-3"));
        assert!(e.contains("child -3"), "{e}");
        let e = err(&good.replace("tree_sizes=100", "tree_sizes=100 100"));
        assert!(e.contains("tree_sizes lists 2 trees"), "{e}");
        let e = err(&good.replace("objective=regression", "objective=lambdarank"));
        assert!(e.contains("lambdarank"), "{e}");
        assert!(err("not a model").contains("first line"));
    }
}
