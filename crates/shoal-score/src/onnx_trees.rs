//! ONNX tree-ensemble classifiers on Shoal's own forest evaluator.
//!
//! tract-onnx runs `TreeEnsembleClassifier` by stepping through the leaf
//! table for every row (thousands of rows/s). When a graph is exactly one
//! `TreeEnsembleClassifier` over one `float` input `[batch, n_features]`,
//! its trees are translated into a [`Forest`] instead and evaluated batch
//! at a time like XGBoost and LightGBM models, with the same outputs as
//! onnxruntime:
//!
//! * **splits**: `BRANCH_LEQ`, `BRANCH_LT`, `BRANCH_GTE`, `BRANCH_GT`,
//!   compared in `float` (the input is `float`), rewritten into the forest's
//!   single `x < threshold` rule; `nodes_missing_value_tracks_true` sends
//!   `NaN` to the true branch.
//! * **leaves**: `class_weights` summed per class, plus `base_values`; a
//!   leaf weighting several classes becomes one tree per class.
//! * **post transforms**: `NONE`, `LOGISTIC`, `SOFTMAX`; a binary model
//!   that weights only class 0 (skl2onnx's boosted binary classifiers,
//!   `LOGISTIC`) yields `[σ(−s), σ(s)]`, as onnxruntime does.
//!
//! Anything else (other split modes or post transforms, several nodes,
//! `double` input) stays with tract.

use std::collections::HashMap;

use tract_onnx::pb::{AttributeProto, GraphProto, NodeProto};

use crate::forest::{Forest, Node, Tree, threshold_for_f32_lt};

/// How the summed class scores become probabilities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Post {
    None,
    Logistic,
    Softmax,
    /// Two labels, only class 0 weighted: `[σ(−s), σ(s)]`.
    BinaryLogistic,
}

/// A translated classifier.
#[derive(Debug, Clone)]
pub(crate) struct OnnxTrees {
    forest: Forest,
    post: Post,
    classes: usize,
}

fn attr<'a>(node: &'a NodeProto, name: &str) -> Option<&'a AttributeProto> {
    node.attribute.iter().find(|a| a.name == name)
}

fn ints<'a>(node: &'a NodeProto, name: &str) -> &'a [i64] {
    attr(node, name).map_or(&[], |a| a.ints.as_slice())
}

fn floats<'a>(node: &'a NodeProto, name: &str) -> &'a [f32] {
    attr(node, name).map_or(&[], |a| a.floats.as_slice())
}

/// ONNX's float element type.
const FLOAT: i32 = 1;

impl OnnxTrees {
    /// The classifier of `graph` if it has the supported shape (see the
    /// module docs), with `num_features` inputs; `None` to use tract.
    pub(crate) fn from_graph(graph: &GraphProto, num_features: usize) -> Option<Self> {
        let [node] = graph.node.as_slice() else {
            return None;
        };
        if node.op_type != "TreeEnsembleClassifier" || graph.input.len() != 1 {
            return None;
        }
        let elem = graph.input[0]
            .r#type
            .as_ref()
            .and_then(|t| t.value.as_ref())
            .map(|v| match v {
                tract_onnx::pb::type_proto::Value::TensorType(t) => t.elem_type,
            });
        if elem != Some(FLOAT) {
            return None;
        }
        Self::from_node(node, num_features)
    }

    fn from_node(node: &NodeProto, num_features: usize) -> Option<Self> {
        let labels = ints(node, "classlabels_int64s")
            .len()
            .max(attr(node, "classlabels_strings").map_or(0, |a| a.strings.len()));
        let post = attr(node, "post_transform").map_or(b"NONE".as_slice(), |a| a.s.as_slice());
        let tree_ids = ints(node, "nodes_treeids");
        let node_ids = ints(node, "nodes_nodeids");
        let features = ints(node, "nodes_featureids");
        let values = floats(node, "nodes_values");
        let trues = ints(node, "nodes_truenodeids");
        let falses = ints(node, "nodes_falsenodeids");
        let modes = attr(node, "nodes_modes").map(|a| &a.strings)?;
        let tracks = ints(node, "nodes_missing_value_tracks_true");
        let n = tree_ids.len();
        if labels < 2
            || [
                node_ids.len(),
                features.len(),
                values.len(),
                trues.len(),
                falses.len(),
            ]
            .iter()
            .any(|l| *l != n)
            || modes.len() != n
            || (!tracks.is_empty() && tracks.len() != n)
        {
            return None;
        }
        let class_trees = ints(node, "class_treeids");
        let class_nodes = ints(node, "class_nodeids");
        let class_ids = ints(node, "class_ids");
        let weights = floats(node, "class_weights");
        let m = class_trees.len();
        if [class_nodes.len(), class_ids.len(), weights.len()]
            .iter()
            .any(|l| *l != m)
        {
            return None;
        }
        let used_classes = class_ids.iter().copied().max().map_or(0, |c| c + 1) as usize;
        let binary_single = labels == 2 && used_classes == 1;
        let post = match (post, binary_single) {
            (b"LOGISTIC", true) => Post::BinaryLogistic,
            (_, true) => return None,
            (b"NONE", false) => Post::None,
            (b"LOGISTIC", false) => Post::Logistic,
            (b"SOFTMAX", false) => Post::Softmax,
            _ => return None,
        };
        let outputs = if binary_single { 1 } else { labels };
        if used_classes > outputs {
            return None;
        }
        let mut base = floats(node, "base_values")
            .iter()
            .map(|v| *v as f64)
            .collect::<Vec<_>>();
        // One entry per output; a binary single-class model may carry a
        // second (the label pair's; `pad_binary_base_values` adds it), unused.
        let allowed = if binary_single { 2 } else { outputs };
        if base.len() > allowed {
            return None; // not a layout this translation knows: tract decides
        }
        base.resize(outputs, 0.0);

        // (tree, node id) → position in the attribute arrays.
        let mut at: HashMap<(i64, i64), usize> = HashMap::with_capacity(n);
        for i in 0..n {
            at.insert((tree_ids[i], node_ids[i]), i);
        }
        // (tree, node id) → class weights.
        let mut leaf_weights: HashMap<(i64, i64), Vec<(usize, f64)>> = HashMap::new();
        for j in 0..m {
            leaf_weights
                .entry((class_trees[j], class_nodes[j]))
                .or_default()
                .push((class_ids[j] as usize, weights[j] as f64));
        }
        let mut trees_in_order: Vec<i64> = tree_ids.to_vec();
        trees_in_order.sort_unstable();
        trees_in_order.dedup();
        let mut by_tree: HashMap<i64, Vec<usize>> = HashMap::new();
        for (i, t) in tree_ids.iter().enumerate() {
            by_tree.entry(*t).or_default().push(i);
        }
        let mut trees = Vec::new();
        for t in trees_in_order {
            // The root: the node of the tree no other node points to.
            let members = &by_tree[&t];
            let mut pointed = std::collections::HashSet::new();
            for &i in members {
                if modes[i] != b"LEAF" {
                    pointed.insert(trues[i]);
                    pointed.insert(falses[i]);
                }
            }
            let roots: Vec<usize> = members
                .iter()
                .copied()
                .filter(|i| !pointed.contains(&node_ids[*i]))
                .collect();
            let [root] = roots.as_slice() else {
                return None;
            };
            // The classes this tree's leaves weight.
            let mut classes: Vec<usize> = members
                .iter()
                .filter_map(|i| leaf_weights.get(&(t, node_ids[*i])))
                .flatten()
                .map(|(c, _)| *c)
                .collect();
            classes.sort_unstable();
            classes.dedup();
            for class in classes {
                let mut nodes = Vec::with_capacity(members.len());
                let mut index: HashMap<i64, usize> = HashMap::new();
                // Depth-first from the root, so the root is nodes[0].
                let mut stack = vec![node_ids[*root]];
                let mut order = Vec::new();
                while let Some(id) = stack.pop() {
                    if index.contains_key(&id) {
                        continue;
                    }
                    let i = *at.get(&(t, id))?;
                    index.insert(id, order.len());
                    order.push(i);
                    if modes[i] != b"LEAF" {
                        stack.push(falses[i]);
                        stack.push(trues[i]);
                    }
                }
                for &i in &order {
                    let node = if modes[i] == b"LEAF" {
                        let value = leaf_weights.get(&(t, node_ids[i])).map_or(0.0, |w| {
                            w.iter().filter(|(c, _)| *c == class).map(|(_, v)| v).sum()
                        });
                        Node::Leaf { value }
                    } else {
                        let feature = usize::try_from(features[i]).ok()?;
                        if feature >= num_features {
                            return None;
                        }
                        let v = values[i];
                        let track_true = tracks.get(i).is_some_and(|x| *x != 0);
                        let (t_node, f_node) = (index[&trues[i]], index[&falses[i]]);
                        // Forest rule: left iff x < threshold (NaN: default_left).
                        let (threshold, left, right, default_left) = match modes[i].as_slice() {
                            b"BRANCH_LEQ" => (
                                threshold_for_f32_lt(v.next_up()),
                                t_node,
                                f_node,
                                track_true,
                            ),
                            b"BRANCH_LT" => (threshold_for_f32_lt(v), t_node, f_node, track_true),
                            // x >= v is the complement of x < v.
                            b"BRANCH_GTE" => (threshold_for_f32_lt(v), f_node, t_node, !track_true),
                            b"BRANCH_GT" => (
                                threshold_for_f32_lt(v.next_up()),
                                f_node,
                                t_node,
                                !track_true,
                            ),
                            _ => return None,
                        };
                        Node::Split {
                            feature,
                            threshold,
                            default_left,
                            left,
                            right,
                        }
                    };
                    nodes.push(node);
                }
                trees.push(Tree {
                    nodes,
                    output: class,
                });
            }
        }
        let forest = Forest::new(num_features, base, trees).ok()?;
        Some(Self {
            forest,
            post,
            classes: labels,
        })
    }

    /// Class probabilities, row-major (`classes` per row), for `rows` rows
    /// given column-major (feature `f` of row `r` at `matrix[f * rows + r]`).
    pub(crate) fn run(&self, matrix: &[f64], rows: usize) -> Vec<f64> {
        let outputs = self.forest.num_outputs();
        let mut margins = vec![0.0; rows * outputs];
        self.forest
            .predict_margin_matrix(matrix, rows, &mut margins);
        let k = self.classes;
        let mut out = vec![0.0; rows * k];
        let sigmoid = |x: f64| 1.0 / (1.0 + (-x).exp());
        for r in 0..rows {
            let row = &mut out[r * k..(r + 1) * k];
            match self.post {
                Post::BinaryLogistic => {
                    let s = margins[r];
                    row[0] = sigmoid(-s);
                    row[1] = sigmoid(s);
                }
                Post::None | Post::Logistic | Post::Softmax => {
                    for (c, v) in row.iter_mut().enumerate() {
                        *v = margins[c * rows + r];
                    }
                    match self.post {
                        Post::Logistic => row.iter_mut().for_each(|v| *v = sigmoid(*v)),
                        Post::Softmax => {
                            let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                            let mut sum = 0.0;
                            for v in row.iter_mut() {
                                *v = (*v - max).exp();
                                sum += *v;
                            }
                            row.iter_mut().for_each(|v| *v /= sum);
                        }
                        _ => {}
                    }
                }
            }
        }
        out
    }

    /// Class probabilities per row.
    pub(crate) fn classes(&self) -> usize {
        self.classes
    }

    /// Trees in the forest (after splitting multi-class leaves).
    pub(crate) fn num_trees(&self) -> usize {
        self.forest.num_trees()
    }
}
