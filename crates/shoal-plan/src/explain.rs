//! `shoal explain`: the compiled operator graph as text or JSON.

use std::fmt::Write;

use shoal_runtime::NodeRole;

use crate::planner::Plan;

/// Where a node's state lives, for `explain` (`None`: stateless).
fn state_text(n: &crate::PlanNode) -> Option<String> {
    let st = n.state.as_ref()?;
    Some(match &st.by_partition {
        Some((src, key)) => format!(
            "per partition of `{src}` (keyed by {key}); follows the partition between processes, any parallelism"
        ),
        None if st.keys.is_empty() => "per instance (not split by key)".to_string(),
        None => format!(
            "per instance, keys ({}) hashed by {}; restore needs the same parallelism",
            st.keys.join(", "),
            shoal_runtime::KEY_HASH
        ),
    })
}

fn role(r: NodeRole) -> &'static str {
    match r {
        NodeRole::Source => "source",
        NodeRole::Transform => "transform",
        NodeRole::Sink => "sink",
    }
}

impl Plan {
    /// A human-readable description: operators, parallelism, channels, schemas.
    pub fn explain(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "pipeline {}  (data dir {})",
            self.name,
            self.data_dir.display()
        );
        let _ = writeln!(
            s,
            "channels: bounded, {} batches each\n",
            self.channel_capacity
        );
        for node in &self.nodes {
            let _ = writeln!(
                s,
                "{} {} [{}] x{}",
                role(node.role),
                node.id,
                node.kind,
                node.parallelism
            );
            for e in &node.inputs {
                let _ = writeln!(s, "  <- {} ({})", e.from, e.partitioning);
            }
            if !node.detail.is_empty() {
                let _ = writeln!(s, "  {}", node.detail);
            }
            if let Some(st) = state_text(node) {
                let _ = writeln!(s, "  state: {st}");
            }
            let cols: Vec<String> = node
                .schema
                .fields()
                .iter()
                .map(|f| {
                    format!(
                        "{}: {}{}",
                        f.name(),
                        f.data_type(),
                        if f.is_nullable() { "?" } else { "" }
                    )
                })
                .collect();
            let label = if node.role == NodeRole::Sink {
                "input schema"
            } else {
                "schema"
            };
            let _ = writeln!(s, "  {label}: {}\n", cols.join(", "));
        }
        let _ = writeln!(s, "dead letters -> {}", self.dead_letter);
        match &self.checkpoint {
            Some(c) => {
                let _ = writeln!(
                    s,
                    "checkpoints: every {:?} into {} (keep {}, timeout {:?}); exactly-once for file sinks",
                    c.interval,
                    c.dir.display(),
                    c.keep,
                    c.timeout
                );
            }
            None => {
                let _ = writeln!(s, "checkpoints: off (at-least-once)");
            }
        }
        s
    }

    /// The same as [`Plan::explain`], as JSON for scripts.
    pub fn explain_json(&self) -> serde_json::Value {
        let nodes: Vec<serde_json::Value> = self
            .nodes
            .iter()
            .map(|n| {
                serde_json::json!({
                    "id": n.id,
                    "kind": n.kind,
                    "role": role(n.role),
                    "parallelism": n.parallelism,
                    "inputs": n.inputs.iter().map(|e| serde_json::json!({"from": e.from, "partitioning": e.partitioning.to_string()})).collect::<Vec<_>>(),
                    "detail": n.detail,
                    "state": n.state.as_ref().map(|st| serde_json::json!({
                        "keys": st.keys,
                        "sharding": if st.by_partition.is_some() { "partition" } else { "instance" },
                        "source": st.by_partition.as_ref().map(|(s, _)| s),
                        "describe": state_text(n),
                    })),
                    "schema": n.schema.fields().iter().map(|f| serde_json::json!({"name": f.name(), "type": f.data_type().to_string(), "nullable": f.is_nullable()})).collect::<Vec<_>>(),
                })
            })
            .collect();
        serde_json::json!({
            "pipeline": self.name,
            "data_dir": self.data_dir,
            "channel_capacity": self.channel_capacity,
            "nodes": nodes,
            "dead_letter": self.dead_letter,
        })
    }
}
