//! Loading XGBoost's JSON model format (`Booster.save_model("m.json")`).
//!
//! The fields read are:
//!
//! * `learner.learner_model_param`: `num_feature`, `num_class`, `num_target`
//!   and `base_score` (a number, or in XGBoost 3 a bracketed list with one
//!   entry per class);
//! * `learner.objective.name`;
//! * `learner.gradient_booster` (`name` must be `gbtree`) and its
//!   `model.trees[*]`: `split_indices`, `split_conditions`, `left_children`,
//!   `right_children`, `default_left`, `split_type`, and `model.tree_info`
//!   (the class each tree adds to);
//! * `learner.feature_names` when present.
//!
//! # Semantics reproduced
//!
//! * XGBoost keeps features and thresholds as `f32`: a row goes left when
//!   `f32(x) < threshold`; `NaN` follows `default_left`. The threshold is
//!   translated so the forest's `f64` comparison gives the same answer for
//!   every input (see [`crate::Forest`]).
//! * A node is a leaf when its left child is `-1`; its value is its
//!   `split_conditions` entry (`base_weights` holds the node's weight before
//!   the learning rate is applied and is not used for prediction).
//! * `base_score` is in the objective's output space: the starting margin is
//!   `logit(base_score)` for logistic objectives, `ln(base_score)` for
//!   Poisson/gamma/Tweedie and `base_score` itself otherwise (also for the
//!   per-class entries of multiclass models).
//! * `multi:softmax` is scored like `multi:softprob` (one probability per
//!   class); XGBoost itself would return only the arg-max class.

use serde::Deserialize;

use crate::error::{Result, ScoreError};
use crate::forest::{Forest, Node, Tree, threshold_for_f32_lt};
use crate::format::ModelFormat;
use crate::objective::{Link, Objective, Task};
use crate::tree_model::TreeModel;

fn malformed(message: impl Into<String>) -> ScoreError {
    ScoreError::Malformed {
        format: ModelFormat::Xgboost,
        path: None,
        message: message.into(),
    }
}

fn unsupported(what: impl Into<String>) -> ScoreError {
    ScoreError::Unsupported {
        format: ModelFormat::Xgboost,
        path: None,
        what: what.into(),
    }
}

#[derive(Deserialize)]
struct ModelFile {
    learner: Learner,
}

#[derive(Deserialize)]
struct Learner {
    learner_model_param: LearnerModelParam,
    objective: ObjectiveJson,
    gradient_booster: GradientBooster,
    #[serde(default)]
    feature_names: Vec<String>,
}

#[derive(Deserialize)]
struct LearnerModelParam {
    base_score: String,
    num_class: String,
    num_feature: String,
    #[serde(default)]
    num_target: Option<String>,
}

#[derive(Deserialize)]
struct ObjectiveJson {
    name: String,
}

#[derive(Deserialize)]
struct GradientBooster {
    name: String,
    #[serde(default)]
    model: Option<GbTreeModel>,
}

#[derive(Deserialize)]
struct GbTreeModel {
    trees: Vec<TreeJson>,
    tree_info: Vec<i64>,
}

#[derive(Deserialize)]
struct TreeJson {
    split_indices: Vec<i64>,
    split_conditions: Vec<f32>,
    left_children: Vec<i64>,
    right_children: Vec<i64>,
    default_left: Vec<Flag>,
    #[serde(default)]
    split_type: Vec<i64>,
    tree_param: TreeParam,
}

#[derive(Deserialize)]
struct TreeParam {
    num_nodes: String,
    #[serde(default)]
    size_leaf_vector: Option<String>,
}

/// `default_left` entries are `0`/`1` in current versions, booleans in old ones.
#[derive(Deserialize)]
#[serde(untagged)]
enum Flag {
    Bool(bool),
    Int(i64),
}

impl Flag {
    fn is_set(&self) -> bool {
        match self {
            Flag::Bool(b) => *b,
            Flag::Int(i) => *i != 0,
        }
    }
}

fn parse_count(field: &str, value: &str) -> Result<usize> {
    value
        .trim()
        .parse()
        .map_err(|_| malformed(format!("{field} is {value:?}, not a count")))
}

/// How `base_score` becomes the starting margin.
#[derive(Clone, Copy)]
enum BaseTransform {
    Identity,
    Logit,
    Ln,
}

/// The objective, and how its `base_score` becomes a margin.
fn objective(name: &str, num_class: usize) -> Result<(Objective, BaseTransform)> {
    let sigmoid = Link::Sigmoid { scale: 1.0 };
    let (task, link, base) = match name {
        "binary:logistic" | "reg:logistic" => {
            (Task::BinaryClassification, sigmoid, BaseTransform::Logit)
        }
        "binary:logitraw" => (
            Task::BinaryClassification,
            Link::Identity,
            BaseTransform::Logit,
        ),
        "reg:squarederror"
        | "reg:linear"
        | "reg:squaredlogerror"
        | "reg:pseudohubererror"
        | "reg:absoluteerror" => (Task::Regression, Link::Identity, BaseTransform::Identity),
        "count:poisson" | "reg:gamma" | "reg:tweedie" => {
            (Task::Regression, Link::Exp, BaseTransform::Ln)
        }
        "multi:softprob" | "multi:softmax" => {
            if num_class < 2 {
                return Err(malformed(format!(
                    "objective {name} needs num_class >= 2, the model says {num_class}"
                )));
            }
            (
                Task::Multiclass { classes: num_class },
                Link::Softmax,
                BaseTransform::Identity,
            )
        }
        other => return Err(unsupported(format!("objective {other:?}"))),
    };
    if num_class > 1 && !matches!(task, Task::Multiclass { .. }) {
        return Err(malformed(format!(
            "num_class is {num_class} but objective {name} is not multiclass"
        )));
    }
    Ok((Objective::new(name, task, link), base))
}

/// `base_score` as written: `"5E-1"` or `"[3.08E-1]"` or `"[a,b,c]"`.
fn base_scores(raw: &str) -> Result<Vec<f32>> {
    let inner = raw.trim();
    let inner = inner
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or(inner);
    inner
        .split(',')
        .map(|s| {
            s.trim()
                .parse::<f32>()
                .map_err(|_| malformed(format!("base_score {raw:?} is not a number list")))
        })
        .collect()
}

/// Margin from a base score, computed in `f32` as XGBoost does.
fn base_margin(score: f32, transform: BaseTransform) -> Result<f64> {
    let m = match transform {
        BaseTransform::Identity => score,
        BaseTransform::Logit => {
            if !(score > 0.0 && score < 1.0) {
                return Err(malformed(format!(
                    "base_score {score} must be in (0, 1) for a logistic objective"
                )));
            }
            -(1.0f32 / score - 1.0f32).ln()
        }
        BaseTransform::Ln => {
            if score.is_nan() || score <= 0.0 {
                return Err(malformed(format!(
                    "base_score {score} must be positive for a log-link objective"
                )));
            }
            score.ln()
        }
    };
    Ok(m as f64)
}

fn tree(t: usize, json: &TreeJson, output: usize) -> Result<Tree> {
    let n = parse_count("tree_param.num_nodes", &json.tree_param.num_nodes)
        .map_err(|e| malformed(format!("tree {t}: {e}")))?;
    if let Some(s) = &json.tree_param.size_leaf_vector
        && parse_count("size_leaf_vector", s)? > 1
    {
        return Err(unsupported(format!(
            "tree {t} has vector leaves (multi_strategy=multi_output_tree)"
        )));
    }
    let lens = [
        ("split_indices", json.split_indices.len()),
        ("split_conditions", json.split_conditions.len()),
        ("left_children", json.left_children.len()),
        ("right_children", json.right_children.len()),
        ("default_left", json.default_left.len()),
    ];
    for (field, len) in lens {
        if len != n {
            return Err(malformed(format!(
                "tree {t}: {field} has {len} entries but num_nodes is {n}"
            )));
        }
    }
    if n == 0 {
        return Err(malformed(format!("tree {t} has no nodes")));
    }
    let child = |i: usize, c: i64| -> Result<usize> {
        usize::try_from(c)
            .ok()
            .filter(|&c| c < n)
            .ok_or_else(|| malformed(format!("tree {t}: node {i} has child {c} (of {n} nodes)")))
    };
    let mut nodes = Vec::with_capacity(n);
    for i in 0..n {
        let (l, r) = (json.left_children[i], json.right_children[i]);
        if l == -1 {
            nodes.push(Node::Leaf {
                value: json.split_conditions[i] as f64,
            });
            continue;
        }
        if json.split_type.get(i).is_some_and(|&s| s != 0) {
            return Err(unsupported(format!(
                "tree {t} node {i} is a categorical split"
            )));
        }
        let feature = usize::try_from(json.split_indices[i]).map_err(|_| {
            malformed(format!(
                "tree {t}: node {i} splits on feature {}",
                json.split_indices[i]
            ))
        })?;
        nodes.push(Node::Split {
            feature,
            threshold: threshold_for_f32_lt(json.split_conditions[i]),
            default_left: json.default_left[i].is_set(),
            left: child(i, l)?,
            right: child(i, r)?,
        });
    }
    Ok(Tree { nodes, output })
}

/// Parse an XGBoost JSON model.
pub(crate) fn parse(text: &str) -> Result<TreeModel> {
    let file: ModelFile = serde_json::from_str(text).map_err(|e| malformed(e.to_string()))?;
    let learner = file.learner;
    let param = &learner.learner_model_param;
    let num_feature = parse_count("num_feature", &param.num_feature)?;
    let num_class = parse_count("num_class", &param.num_class)?;
    if let Some(targets) = &param.num_target
        && parse_count("num_target", targets)? > 1
    {
        return Err(unsupported(format!(
            "num_target = {targets} (multi-output)"
        )));
    }
    let (objective, transform) = objective(&learner.objective.name, num_class)?;
    let outputs = objective.num_outputs();

    let booster = &learner.gradient_booster;
    if booster.name != "gbtree" {
        return Err(unsupported(format!(
            "booster {:?} (only gbtree is supported)",
            booster.name
        )));
    }
    let model = booster
        .model
        .as_ref()
        .ok_or_else(|| malformed("gradient_booster has no model"))?;
    if model.tree_info.len() != model.trees.len() {
        return Err(malformed(format!(
            "tree_info has {} entries for {} trees",
            model.tree_info.len(),
            model.trees.len()
        )));
    }

    let scores = base_scores(&param.base_score)?;
    let base: Vec<f64> = match scores.len() {
        1 => vec![base_margin(scores[0], transform)?; outputs],
        n if n == outputs => scores
            .iter()
            .map(|&s| base_margin(s, transform))
            .collect::<Result<_>>()?,
        n => {
            return Err(malformed(format!(
                "base_score has {n} entries for {outputs} outputs"
            )));
        }
    };

    let mut trees = Vec::with_capacity(model.trees.len());
    for (t, (json, &group)) in model.trees.iter().zip(&model.tree_info).enumerate() {
        let output = usize::try_from(group)
            .ok()
            .filter(|&g| g < outputs)
            .ok_or_else(|| {
                malformed(format!(
                    "tree {t} belongs to class {group} but the model has {outputs} outputs"
                ))
            })?;
        trees.push(tree(t, json, output)?);
    }
    let forest = Forest::new(num_feature, base, trees).map_err(malformed)?;
    Ok(TreeModel::from_parts(
        ModelFormat::Xgboost,
        forest,
        objective,
        learner.feature_names,
        None,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One split on feature 0 at `threshold` (missing goes left when
    /// `default_left`), leaves -1 / +1, objective reg:squarederror.
    pub(crate) fn stump(threshold: &str, default_left: bool) -> String {
        format!(
            r#"{{"learner": {{
              "learner_model_param": {{"base_score": "[5E-1]", "num_class": "0",
                                      "num_feature": "2", "num_target": "1"}},
              "objective": {{"name": "reg:squarederror"}},
              "feature_names": ["a", "b"],
              "gradient_booster": {{"name": "gbtree", "model": {{
                "tree_info": [0],
                "trees": [{{
                  "split_indices": [0, 0, 0],
                  "split_conditions": [{threshold}, -1.0, 1.0],
                  "left_children": [1, -1, -1],
                  "right_children": [2, -1, -1],
                  "default_left": [{}, 0, 0],
                  "split_type": [0, 0, 0],
                  "base_weights": [0.0, -1.0, 1.0],
                  "tree_param": {{"num_nodes": "3", "num_feature": "2",
                                 "size_leaf_vector": "1"}}
                }}]
              }}}}
            }}}}"#,
            u8::from(default_left)
        )
    }

    fn predict(model: &TreeModel, xs: &[f64]) -> Vec<f64> {
        let zeros = vec![0.0; xs.len()];
        let mut out = Vec::new();
        model.predict(&[xs, &zeros], &mut out).unwrap();
        out
    }

    #[test]
    fn strict_less_than_and_missing_direction() {
        let m = parse(&stump("0.5", true)).unwrap();
        assert_eq!(m.num_features(), 2);
        assert_eq!(m.feature_names(), ["a", "b"]);
        // base 0.5 (identity) + leaf
        assert_eq!(
            predict(&m, &[0.4999999, 0.5, 0.6, f64::NAN]),
            vec![-0.5, 1.5, 1.5, -0.5]
        );
        let m = parse(&stump("0.5", false)).unwrap();
        assert_eq!(predict(&m, &[f64::NAN]), vec![1.5]);
    }

    #[test]
    fn compares_in_f32_like_xgboost() {
        // 0.1f32 is 0.100000001490116...; the f64 0.1 rounds to it, so
        // f32(0.1) < 0.1f32 is false and the row goes right, although the
        // f64 0.1 is below the f32 threshold.
        let m = parse(&stump("0.1", true)).unwrap();
        assert_eq!(predict(&m, &[0.1, 0.09999999]), vec![1.5, -0.5]);
    }

    #[test]
    fn logistic_base_score_is_a_probability() {
        let text = stump("0.5", true)
            .replace("reg:squarederror", "binary:logistic")
            .replace("[5E-1]", "[2E-1]");
        let m = parse(&text).unwrap();
        let p = predict(&m, &[1.0])[0];
        let margin = -(1.0f32 / 0.2 - 1.0).ln() as f64 + 1.0;
        assert!((p - 1.0 / (1.0 + (-margin).exp())).abs() < 1e-12);
        // Older versions write a bare number.
        let m = parse(&text.replace("[2E-1]", "2E-1")).unwrap();
        assert_eq!(predict(&m, &[1.0])[0], p);
    }

    #[test]
    fn errors_name_the_problem() {
        let err = |text: &str| parse(text).unwrap_err().to_string();
        let good = stump("0.5", true);
        assert!(err(&good[..good.len() / 2]).contains("EOF"));
        let e = err(&good.replace("[1, -1, -1]", "[1, -1]"));
        assert!(e.contains("tree 0: left_children has 2 entries"), "{e}");
        let e = err(&good.replace("[1, -1, -1]", "[7, -1, -1]"));
        assert!(e.contains("child 7"), "{e}");
        let e = err(&good.replace("\"split_type\": [0, 0, 0]", "\"split_type\": [1, 0, 0]"));
        assert!(e.contains("categorical"), "{e}");
        let e = err(&good.replace("reg:squarederror", "rank:ndcg"));
        assert!(e.contains("unsupported") && e.contains("rank:ndcg"), "{e}");
        let e = err(&good.replace("\"gbtree\"", "\"gblinear\""));
        assert!(e.contains("gblinear"), "{e}");
        let e = err(&good.replace(
            "\"split_indices\": [0, 0, 0]",
            "\"split_indices\": [5, 0, 0]",
        ));
        assert!(e.contains("feature 5"), "{e}");
    }
}
