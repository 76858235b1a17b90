//! The flattened forest: every tree of a model in one set of flat arrays,
//! evaluated over a whole column-major batch at once.
//!
//! Both loaders ([`crate::xgboost`], [`crate::lightgbm`]) translate their
//! format's split rule into the single rule used here, so the hot loop has
//! no per-format branches:
//!
//! > a row goes **left iff `x < threshold`**; a missing value (`NaN`) goes
//! > left iff the node's `default_left` flag is set.
//!
//! XGBoost's `f32(x) < t` and LightGBM's `x <= t` are both rewritten into
//! that form by adjusting the threshold (see [`threshold_for_f32_lt`] and
//! [`threshold_for_le`]); LightGBM's "zero is missing" nodes become two extra
//! plain nodes.
//!
//! # Layout
//!
//! Nodes of all trees live in parallel arrays (structure of arrays):
//! `feature`, `threshold`, `default_left`, `children` (a `[left, right]`
//! pair) and `leaf_value`. A leaf is a node whose two children are itself, so
//! a walk of exactly `depth(tree)` steps from the root always ends on a leaf,
//! whatever path it took. That lets the evaluator walk a group of rows in
//! lockstep without a per-row "is this a leaf?" branch: the loads of the
//! group's rows are independent, so the CPU overlaps them.
//!
//! # Evaluation order
//!
//! Rows are cut into blocks of [`BLOCK_ROWS`]; within a block every tree is
//! walked for every row of the block (trees outer, rows inner), in groups of
//! [`LANES`] rows. A block's feature values (`features × BLOCK_ROWS × 8`
//! bytes) stay in L1 while all trees pass over them, and one tree's nodes
//! stay in L1 while all rows of the block pass through it.
//!
//! Measured on the committed fraud models (35 trees, depth 6, 8192-row
//! batches, `benches/score/`): the block size (64 to 8192) changes
//! throughput by less than the noise; 8 lanes beat 4 by ~25 % and 16 by
//! ~5 %; packing each node into one 24-byte record (array of structs) was
//! ~6 % faster than these parallel arrays, not enough to give up the simpler
//! layout.

/// Rows per block: all trees pass over one block before the next.
pub const BLOCK_ROWS: usize = 256;
/// Rows walked in lockstep through one tree.
pub const LANES: usize = 8;

/// One node of a tree handed to [`Forest::new`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Node {
    /// An internal node: `x < threshold` (or missing with `default_left`)
    /// goes to `left`, anything else to `right`. Children index the same
    /// tree's node list.
    Split {
        feature: usize,
        threshold: f64,
        default_left: bool,
        left: usize,
        right: usize,
    },
    /// A leaf adding `value` to its tree's output.
    Leaf { value: f64 },
}

/// A tree handed to [`Forest::new`]: `nodes[0]` is the root. Nodes may be
/// shared by several parents (a DAG) but must not form a cycle.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Tree {
    /// The nodes; the root first.
    pub nodes: Vec<Node>,
    /// Which model output (class) this tree adds to.
    pub output: usize,
}

/// All trees of a model, flattened for batch evaluation.
#[derive(Debug, Clone)]
pub struct Forest {
    // ---- per node -------------------------------------------------------
    feature: Vec<u32>,
    threshold: Vec<f64>,
    default_left: Vec<bool>,
    children: Vec<[u32; 2]>,
    leaf_value: Vec<f64>,
    // ---- per tree (single-leaf trees are folded into `base_margin`) ------
    roots: Vec<u32>,
    depths: Vec<u32>,
    outputs: Vec<u32>,
    // ---- per model ------------------------------------------------------
    base_margin: Vec<f64>,
    num_features: usize,
    num_trees: usize,
}

impl Forest {
    /// Flatten `trees`. `base_margin` has one entry per output and is added
    /// to every row before the trees. Errors are messages for the loader to
    /// wrap with the format and file.
    pub(crate) fn new(
        num_features: usize,
        base_margin: Vec<f64>,
        trees: Vec<Tree>,
    ) -> Result<Self, String> {
        let num_outputs = base_margin.len();
        if num_outputs == 0 {
            return Err("the model has no outputs".into());
        }
        let total: usize = trees.iter().map(|t| t.nodes.len()).sum();
        if total >= u32::MAX as usize {
            return Err(format!("{total} nodes is too many"));
        }
        let mut forest = Forest {
            feature: Vec::with_capacity(total),
            threshold: Vec::with_capacity(total),
            default_left: Vec::with_capacity(total),
            children: Vec::with_capacity(total),
            leaf_value: Vec::with_capacity(total),
            roots: Vec::with_capacity(trees.len()),
            depths: Vec::with_capacity(trees.len()),
            outputs: Vec::with_capacity(trees.len()),
            base_margin,
            num_features,
            num_trees: trees.len(),
        };
        for (t, tree) in trees.iter().enumerate() {
            forest
                .push_tree(tree, num_outputs)
                .map_err(|m| format!("tree {t}: {m}"))?;
        }
        Ok(forest)
    }

    fn push_tree(&mut self, tree: &Tree, num_outputs: usize) -> Result<(), String> {
        if tree.output >= num_outputs {
            return Err(format!(
                "adds to output {} but the model has {num_outputs}",
                tree.output
            ));
        }
        let depth = tree_depth(&tree.nodes)?;
        if depth == 0 {
            // A single leaf: a constant, folded into the base margin.
            if let Some(Node::Leaf { value }) = tree.nodes.first() {
                self.base_margin[tree.output] += value;
            }
            return Ok(());
        }
        let offset = self.feature.len() as u32;
        for (i, node) in tree.nodes.iter().enumerate() {
            match *node {
                Node::Split {
                    feature,
                    threshold,
                    default_left,
                    left,
                    right,
                } => {
                    if feature >= self.num_features {
                        return Err(format!(
                            "node {i} splits on feature {feature} but the model has {} features",
                            self.num_features
                        ));
                    }
                    self.feature.push(feature as u32);
                    self.threshold.push(threshold);
                    self.default_left.push(default_left);
                    self.children
                        .push([offset + left as u32, offset + right as u32]);
                    self.leaf_value.push(0.0);
                }
                Node::Leaf { value } => {
                    let me = offset + i as u32;
                    self.feature.push(0);
                    self.threshold.push(0.0);
                    self.default_left.push(false);
                    self.children.push([me, me]);
                    self.leaf_value.push(value);
                }
            }
        }
        self.roots.push(offset);
        self.depths.push(depth);
        self.outputs.push(tree.output as u32);
        Ok(())
    }

    /// Number of input features.
    pub fn num_features(&self) -> usize {
        self.num_features
    }

    /// Number of outputs (1, or the class count of a multiclass model).
    pub fn num_outputs(&self) -> usize {
        self.base_margin.len()
    }

    /// Number of trees in the model, including single-leaf ones.
    pub fn num_trees(&self) -> usize {
        self.num_trees
    }

    /// Number of nodes stored (single-leaf trees take none).
    pub fn num_nodes(&self) -> usize {
        self.feature.len()
    }

    /// The deepest tree's depth (splits on its longest path).
    pub fn max_depth(&self) -> usize {
        self.depths.iter().copied().max().unwrap_or(0) as usize
    }

    /// The raw scores (margins) before the link function.
    ///
    /// `features` holds one slice per feature, each at least `rows` long.
    /// `out` must hold `num_outputs() * rows` values and is overwritten
    /// output-major: output `k` of row `r` is `out[k * rows + r]`.
    ///
    /// # Panics
    ///
    /// If `features` has fewer than [`num_features`](Self::num_features)
    /// slices, a slice is shorter than `rows`, or `out` has the wrong length.
    /// [`crate::TreeModel`] checks these and returns errors instead.
    pub fn predict_margin(&self, features: &[&[f64]], rows: usize, out: &mut [f64]) {
        assert!(features.len() >= self.num_features, "feature count");
        assert!(features.iter().all(|f| f.len() >= rows), "feature length");
        self.margins(&Slices(features), rows, out);
    }

    /// [`predict_margin`](Self::predict_margin) over a contiguous
    /// column-major matrix: feature `f` of row `r` at `matrix[f * rows + r]`.
    pub(crate) fn predict_margin_matrix(&self, matrix: &[f64], rows: usize, out: &mut [f64]) {
        assert!(matrix.len() >= self.num_features * rows, "matrix length");
        self.margins(&Matrix { data: matrix, rows }, rows, out);
    }

    fn margins<C: Columns>(&self, features: &C, rows: usize, out: &mut [f64]) {
        assert_eq!(out.len(), rows * self.num_outputs(), "output length");
        for (k, base) in self.base_margin.iter().enumerate() {
            out[k * rows..(k + 1) * rows].fill(*base);
        }
        let mut start = 0;
        while start < rows {
            let end = (start + BLOCK_ROWS).min(rows);
            self.add_block(features, rows, start, end, out);
            start = end;
        }
    }

    /// Add every tree's leaf value for rows `start..end` into `out`.
    fn add_block<C: Columns>(
        &self,
        features: &C,
        rows: usize,
        start: usize,
        end: usize,
        out: &mut [f64],
    ) {
        for t in 0..self.roots.len() {
            let root = self.roots[t];
            let depth = self.depths[t];
            let base = self.outputs[t] as usize * rows;
            let acc = &mut out[base + start..base + end];
            let mut r = start;
            while r + LANES <= end {
                let leaves = self.walk::<LANES, C>(root, depth, features, r);
                for (j, leaf) in leaves.iter().enumerate() {
                    acc[r - start + j] += self.leaf_value[*leaf as usize];
                }
                r += LANES;
            }
            while r < end {
                let [leaf] = self.walk::<1, C>(root, depth, features, r);
                acc[r - start] += self.leaf_value[leaf as usize];
                r += 1;
            }
        }
    }

    /// Walk rows `row..row + L` through one tree in lockstep; returns the
    /// leaf each row ends on.
    #[inline(always)]
    fn walk<const L: usize, C: Columns>(
        &self,
        root: u32,
        depth: u32,
        features: &C,
        row: usize,
    ) -> [u32; L] {
        let mut node = [root; L];
        for _ in 0..depth {
            for (j, n) in node.iter_mut().enumerate() {
                let i = *n as usize;
                let x = features.value(self.feature[i] as usize, row + j);
                let left = (x < self.threshold[i]) | (x.is_nan() & self.default_left[i]);
                *n = self.children[i][usize::from(!left)];
            }
        }
        node
    }
}

/// Read access to column-major features.
trait Columns {
    /// Feature `feature` of row `row`.
    fn value(&self, feature: usize, row: usize) -> f64;
}

/// One slice per feature.
struct Slices<'a>(&'a [&'a [f64]]);

impl Columns for Slices<'_> {
    #[inline(always)]
    fn value(&self, feature: usize, row: usize) -> f64 {
        self.0[feature][row]
    }
}

/// One contiguous column-major matrix.
struct Matrix<'a> {
    data: &'a [f64],
    rows: usize,
}

impl Columns for Matrix<'_> {
    #[inline(always)]
    fn value(&self, feature: usize, row: usize) -> f64 {
        self.data[feature * self.rows + row]
    }
}

/// Depth of the tree rooted at `nodes[0]` (0 for a single leaf), checking
/// child indices and rejecting cycles.
fn tree_depth(nodes: &[Node]) -> Result<u32, String> {
    if nodes.is_empty() {
        return Err("has no nodes".into());
    }
    const UNSEEN: u32 = u32::MAX;
    const VISITING: u32 = u32::MAX - 1;
    let mut depth = vec![UNSEEN; nodes.len()];
    let mut stack = vec![0usize];
    while let Some(&i) = stack.last() {
        match nodes[i] {
            Node::Leaf { .. } => {
                depth[i] = 0;
                stack.pop();
            }
            Node::Split { left, right, .. } => {
                for c in [left, right] {
                    if c >= nodes.len() {
                        return Err(format!(
                            "node {i} has child {c} but the tree has {} nodes",
                            nodes.len()
                        ));
                    }
                }
                if depth[i] == UNSEEN {
                    depth[i] = VISITING;
                }
                let pending: Vec<usize> = [left, right]
                    .into_iter()
                    .filter(|&c| depth[c] == UNSEEN)
                    .collect();
                if [left, right].iter().any(|&c| depth[c] == VISITING) {
                    return Err(format!("node {i} is its own ancestor (a cycle)"));
                }
                if pending.is_empty() {
                    depth[i] = 1 + depth[left].max(depth[right]);
                    stack.pop();
                } else {
                    stack.extend(pending);
                }
            }
        }
    }
    Ok(depth[0])
}

/// The `f64` threshold `u` such that `x < u` exactly when XGBoost's
/// `(x as f32) < t` holds, for every non-NaN `f64` `x`.
///
/// XGBoost stores features as `f32` and rounds each input to nearest (ties
/// to even) before comparing, so the set of `x` that go left is everything
/// below the midpoint between `t` and the `f32` just below it; whether the
/// midpoint itself goes left depends on which neighbour it rounds to.
pub(crate) fn threshold_for_f32_lt(t: f32) -> f64 {
    if t.is_nan() || t == f32::NEG_INFINITY {
        // Nothing compares below it.
        return f64::NEG_INFINITY;
    }
    // Half an ulp of f32::MAX: past MAX + this, f64 values round to infinity.
    let half_top_ulp = 2f64.powi(103);
    let mid = if t == f32::INFINITY {
        f32::MAX as f64 + half_top_ulp
    } else if t == f32::MIN {
        -(f32::MAX as f64) - half_top_ulp
    } else {
        // Exact: two adjacent f32s and their mean all fit in an f64.
        (t.next_down() as f64 + t as f64) / 2.0
    };
    // A tie goes to the neighbour with an even mantissa; infinity counts as
    // even (f32::MAX's mantissa is odd).
    let t_even = t.is_infinite() || t.to_bits() & 1 == 0;
    if t_even {
        mid // the midpoint rounds up to t, so it is not below t
    } else {
        mid.next_up() // the midpoint rounds down, so it is below t
    }
}

/// The `f64` threshold `u` such that `x < u` exactly when `x <= t`, for
/// every non-NaN `x` (for `t = +inf`, every `x` except `+inf` itself:
/// LightGBM never writes an infinite threshold).
pub(crate) fn threshold_for_le(t: f64) -> f64 {
    if t.is_nan() {
        f64::NEG_INFINITY
    } else {
        t.next_up()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(feature: usize, threshold: f64, default_left: bool, l: usize, r: usize) -> Node {
        Node::Split {
            feature,
            threshold,
            default_left,
            left: l,
            right: r,
        }
    }

    fn leaf(value: f64) -> Node {
        Node::Leaf { value }
    }

    /// f0 < 1 ? (f1 < 5 ? 1 : 2) : 3, missing f0 goes right, missing f1 left.
    fn tiny() -> Forest {
        let tree = Tree {
            nodes: vec![
                split(0, 1.0, false, 1, 2),
                split(1, 5.0, true, 3, 4),
                leaf(3.0),
                leaf(1.0),
                leaf(2.0),
            ],
            output: 0,
        };
        Forest::new(2, vec![0.5], vec![tree]).unwrap()
    }

    fn margins(forest: &Forest, f0: &[f64], f1: &[f64]) -> Vec<f64> {
        let mut out = vec![0.0; f0.len() * forest.num_outputs()];
        forest.predict_margin(&[f0, f1], f0.len(), &mut out);
        out
    }

    #[test]
    fn tiny_tree_paths_and_missing() {
        let f = tiny();
        assert_eq!(f.max_depth(), 2);
        assert_eq!(f.num_nodes(), 5);
        let nan = f64::NAN;
        let out = margins(
            &f,
            &[0.0, 0.0, 1.0, nan, 0.0, 0.999],
            &[4.0, 5.0, 0.0, 0.0, nan, 4.999],
        );
        // base 0.5 plus the leaf
        assert_eq!(out, vec![1.5, 2.5, 3.5, 3.5, 1.5, 1.5]);
    }

    #[test]
    fn blocks_and_lanes_agree_with_single_rows() {
        let f = tiny();
        let n = BLOCK_ROWS * 2 + LANES + 3;
        let f0: Vec<f64> = (0..n).map(|i| (i % 7) as f64 * 0.4).collect();
        let f1: Vec<f64> = (0..n)
            .map(|i| {
                if i % 11 == 0 {
                    f64::NAN
                } else {
                    (i % 13) as f64
                }
            })
            .collect();
        let all = margins(&f, &f0, &f1);
        for i in 0..n {
            assert_eq!(all[i], margins(&f, &f0[i..=i], &f1[i..=i])[0], "row {i}");
        }
    }

    #[test]
    fn single_leaf_trees_fold_into_base_and_outputs_are_separate() {
        let trees = vec![
            Tree {
                nodes: vec![leaf(0.25)],
                output: 1,
            },
            Tree {
                nodes: vec![split(0, 0.0, false, 1, 2), leaf(-1.0), leaf(1.0)],
                output: 0,
            },
        ];
        let f = Forest::new(1, vec![0.0, 1.0], trees).unwrap();
        assert_eq!(f.num_trees(), 2);
        assert_eq!(f.num_nodes(), 3);
        let mut out = vec![0.0; 4];
        f.predict_margin(&[&[-1.0, 1.0]], 2, &mut out);
        assert_eq!(out, vec![-1.0, 1.0, 1.25, 1.25]);
    }

    #[test]
    fn shared_children_are_allowed_cycles_are_not() {
        let dag = Tree {
            nodes: vec![
                split(0, 0.0, false, 1, 2),
                split(0, -1.0, false, 2, 2),
                leaf(1.0),
            ],
            output: 0,
        };
        assert_eq!(Forest::new(1, vec![0.0], vec![dag]).unwrap().max_depth(), 2);
        let cycle = Tree {
            nodes: vec![
                split(0, 0.0, false, 1, 2),
                split(0, 0.0, false, 0, 2),
                leaf(1.0),
            ],
            output: 0,
        };
        let err = Forest::new(1, vec![0.0], vec![cycle]).unwrap_err();
        assert!(err.contains("cycle"), "{err}");
        let dangling = Tree {
            nodes: vec![split(0, 0.0, false, 1, 7), leaf(1.0)],
            output: 0,
        };
        let err = Forest::new(1, vec![0.0], vec![dangling]).unwrap_err();
        assert!(err.contains("child 7"), "{err}");
        let bad_feature = Tree {
            nodes: vec![split(3, 0.0, false, 1, 1), leaf(1.0)],
            output: 0,
        };
        let err = Forest::new(1, vec![0.0], vec![bad_feature]).unwrap_err();
        assert!(err.contains("feature 3"), "{err}");
    }

    /// Values of `f64` near `t`, including the exact midpoints to both
    /// neighbouring `f32`s and one `f64` ulp either side of them.
    fn probes(t: f32) -> Vec<f64> {
        let mut v = vec![];
        for c in [t.next_down(), t, t.next_up()] {
            if !c.is_finite() {
                continue;
            }
            for n in [c.next_down(), c.next_up()] {
                if !n.is_finite() {
                    continue;
                }
                let mid = (c as f64 + n as f64) / 2.0;
                v.extend([mid.next_down(), mid, mid.next_up()]);
            }
            let c = c as f64;
            v.extend([c.next_down(), c, c.next_up()]);
        }
        v
    }

    #[test]
    fn f32_threshold_matches_rounding_then_comparing() {
        let mut ts: Vec<f32> = vec![
            0.0,
            -0.0,
            1.0,
            -1.0,
            0.1,
            0.3006851,
            1e-40,
            f32::from_bits(1),
            -f32::from_bits(1),
            f32::MIN_POSITIVE,
            16_777_216.0,
            16_777_217.0,
            f32::MAX,
            f32::MIN,
        ];
        // A spread of mantissas (odd and even) and exponents.
        let mut s = 0x1234_5678u32;
        for _ in 0..2000 {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            let t = f32::from_bits(s);
            if t.is_finite() {
                ts.push(t);
            }
        }
        for t in ts {
            let u = threshold_for_f32_lt(t);
            for x in probes(t) {
                assert_eq!(x < u, (x as f32) < t, "t={t:e} x={x:e} u={u:e}");
            }
        }
        // Overflow to infinity.
        let u = threshold_for_f32_lt(f32::INFINITY);
        for x in [
            f64::MAX,
            3.4028235677973366e38,
            3.402823567797337e38,
            f64::INFINITY,
        ] {
            assert_eq!(x < u, (x as f32) < f32::INFINITY, "x={x:e}");
        }
        let u = threshold_for_f32_lt(f32::MIN);
        for x in [
            f64::MIN,
            -3.4028235677973366e38,
            -3.402823567797337e38,
            -3.4e38,
        ] {
            assert_eq!(x < u, (x as f32) < f32::MIN, "x={x:e}");
        }
        assert_eq!(threshold_for_f32_lt(f32::NAN), f64::NEG_INFINITY);
    }

    #[test]
    fn le_threshold() {
        for t in [0.0, -0.0, 1.5, -1e300, 5e-324] {
            let u = threshold_for_le(t);
            for x in [t.next_down(), t, t.next_up()] {
                assert_eq!(x < u, x <= t, "t={t:e} x={x:e}");
            }
        }
    }
}
