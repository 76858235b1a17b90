//! What a model predicts ([`Task`]) and how its raw tree sums (margins)
//! become scores ([`Link`]), read from the model's objective.

/// What kind of prediction a model makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    /// A real-valued prediction: one output.
    Regression,
    /// The probability of the positive class: one output.
    BinaryClassification,
    /// One probability per class.
    Multiclass {
        /// Number of classes (and outputs).
        classes: usize,
    },
}

/// The function applied to a row's margins to give its scores.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Link {
    /// The margin itself.
    Identity,
    /// `1 / (1 + exp(-scale * margin))`, applied to each output.
    Sigmoid {
        /// LightGBM's `sigmoid:` parameter; 1 for XGBoost.
        scale: f64,
    },
    /// `exp(margin)` (Poisson, gamma and Tweedie regression).
    Exp,
    /// `exp(m_k) / sum_j exp(m_j)` across a row's outputs.
    Softmax,
}

/// A model's objective: its name as written in the model, and what follows
/// from it.
#[derive(Debug, Clone, PartialEq)]
pub struct Objective {
    name: String,
    task: Task,
    link: Link,
}

impl Objective {
    pub(crate) fn new(name: impl Into<String>, task: Task, link: Link) -> Self {
        Self {
            name: name.into(),
            task,
            link,
        }
    }

    /// The objective as the model names it, e.g. `binary:logistic` or
    /// `binary sigmoid:1`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What the model predicts.
    pub fn task(&self) -> Task {
        self.task
    }

    /// How margins become scores.
    pub fn link(&self) -> Link {
        self.link
    }

    /// Number of outputs per row.
    pub fn num_outputs(&self) -> usize {
        match self.task {
            Task::Regression | Task::BinaryClassification => 1,
            Task::Multiclass { classes } => classes,
        }
    }

    /// Apply the link in place to output-major margins of `rows` rows
    /// (output `k` of row `r` at `values[k * rows + r]`).
    pub(crate) fn apply(&self, values: &mut [f64], rows: usize) {
        match self.link {
            Link::Identity => {}
            Link::Sigmoid { scale } => {
                for v in values.iter_mut() {
                    *v = 1.0 / (1.0 + (-scale * *v).exp());
                }
            }
            Link::Exp => {
                for v in values.iter_mut() {
                    *v = v.exp();
                }
            }
            Link::Softmax => softmax(values, rows),
        }
    }
}

/// Softmax across outputs for each row, with the row's maximum subtracted
/// first so large margins do not overflow.
fn softmax(values: &mut [f64], rows: usize) {
    if rows == 0 {
        return;
    }
    let outputs = values.len() / rows;
    for r in 0..rows {
        let mut max = f64::NEG_INFINITY;
        for k in 0..outputs {
            max = max.max(values[k * rows + r]);
        }
        let mut sum = 0.0;
        for k in 0..outputs {
            let e = (values[k * rows + r] - max).exp();
            values[k * rows + r] = e;
            sum += e;
        }
        for k in 0..outputs {
            values[k * rows + r] /= sum;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links() {
        let sig = Objective::new(
            "binary sigmoid:2",
            Task::BinaryClassification,
            Link::Sigmoid { scale: 2.0 },
        );
        let mut v = vec![0.0, 1.0];
        sig.apply(&mut v, 2);
        assert_eq!(v[0], 0.5);
        assert!((v[1] - 1.0 / (1.0 + (-2.0f64).exp())).abs() < 1e-15);

        let exp = Objective::new("count:poisson", Task::Regression, Link::Exp);
        let mut v = vec![0.0, 1.0];
        exp.apply(&mut v, 2);
        assert_eq!(v, vec![1.0, std::f64::consts::E]);
    }

    #[test]
    fn softmax_is_per_row_across_outputs() {
        let obj = Objective::new(
            "multi:softprob",
            Task::Multiclass { classes: 3 },
            Link::Softmax,
        );
        assert_eq!(obj.num_outputs(), 3);
        // Two rows, output-major: row 0 = (0, 0, 0), row 1 = (1000, 0, 1000).
        let mut v = vec![0.0, 1000.0, 0.0, 0.0, 0.0, 1000.0];
        obj.apply(&mut v, 2);
        let third = 1.0 / 3.0;
        assert!((v[0] - third).abs() < 1e-15 && (v[2] - third).abs() < 1e-15);
        assert_eq!((v[1], v[3], v[5]), (0.5, 0.0, 0.5));
    }
}
