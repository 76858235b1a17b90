//! Checks on the graph of ids: unique across sections, `inputs` that exist and
//! are not sinks, no cycle among transforms, and warnings for ids nobody reads.

use std::collections::{HashMap, HashSet};

use indexmap::IndexMap;

use crate::convert::{ConfigCx, R};
use crate::error::DslError;
use crate::shape::describe;
use crate::spec::{PipelineSpec, SinkSpec, SourceSpec, TransformSpec};
use crate::suggest;

/// At most this many "not read" warnings, then one summary.
const MAX_WARNINGS: usize = 20;

impl ConfigCx<'_> {
    pub(crate) fn unique_ids(
        &self,
        sources: &IndexMap<String, SourceSpec>,
        transforms: &IndexMap<String, TransformSpec>,
        sinks: &IndexMap<String, SinkSpec>,
    ) -> R<()> {
        let mut seen: HashMap<&str, &str> = HashMap::new();
        let all = sources
            .keys()
            .map(|k| ("sources", k))
            .chain(transforms.keys().map(|k| ("transforms", k)))
            .chain(sinks.keys().map(|k| ("sinks", k)));
        // Report the occurrence that comes later in the file.
        let mut clash: Option<(&str, &str, &str)> = None; // (id, first section, later section)
        for (section, id) in all {
            if let Some(&first) = seen.get(id.as_str()) {
                let a = self.ctx.positions.nearest_key(&[first, id]);
                let b = self.ctx.positions.nearest_key(&[section, id]);
                let (first, later) = if a <= b {
                    (first, section)
                } else {
                    (section, first)
                };
                clash = Some((id, first, later));
                break;
            }
            seen.insert(id, section);
        }
        let Some((id, first, later)) = clash else {
            return Ok(());
        };
        let kind = |s: &str| describe(&[s.to_string(), id.to_string()]);
        let first_line = self
            .ctx
            .positions
            .nearest_key(&[first, id])
            .map(|l| l.line)
            .unwrap_or(1);
        Err(self
            .ctx
            .at_key(&[later, id], format!("id \"{id}\" is used twice: {} and {}", kind(first), kind(later)))
            .with_hint(format!(
                "sources, transforms and sinks share one namespace; rename one of them (the other is at line {first_line})"
            )))
    }

    pub(crate) fn check_inputs(
        &self,
        sources: &IndexMap<String, SourceSpec>,
        transforms: &IndexMap<String, TransformSpec>,
        sinks: &IndexMap<String, SinkSpec>,
    ) -> R<()> {
        let readers = transforms
            .iter()
            .map(|(id, t)| ("transforms", id, t.inputs()))
            .chain(sinks.iter().map(|(id, s)| ("sinks", id, s.inputs())));
        for (section, id, inputs) in readers {
            if inputs.is_empty() {
                return Err(self
                    .err(
                        &[section, id, "inputs"],
                        format!("{} has no inputs", describe(&[section.into(), id.into()])),
                    )
                    .with_hint("name at least one source or transform, e.g. inputs: [txns]"));
            }
            let mut seen: HashSet<&str> = HashSet::with_capacity(inputs.len());
            for (i, input) in inputs.iter().enumerate() {
                let idx = i.to_string();
                let at = [section, id.as_str(), "inputs", idx.as_str()];
                if sources.contains_key(input) || (transforms.contains_key(input) && input != id) {
                    if !seen.insert(input) {
                        return Err(self.err(&at, format!("input \"{input}\" is listed twice")));
                    }
                    continue;
                }
                if input == id && section == "transforms" {
                    return Err(self
                        .err(&at, format!("transform \"{id}\" reads its own output"))
                        .with_hint("a transform cannot be its own input"));
                }
                if sinks.contains_key(input) {
                    return Err(self
                        .err(
                            &at,
                            format!("\"{input}\" is a sink; sinks cannot be inputs"),
                        )
                        .with_hint("read from the source or transform that feeds it instead"));
                }
                let scope: Vec<&str> = sources
                    .keys()
                    .chain(transforms.keys())
                    .map(String::as_str)
                    .filter(|k| *k != id)
                    .collect();
                let hint =
                    suggest::did_you_mean(input, scope.iter().copied()).unwrap_or_else(|| {
                        format!(
                            "known sources and transforms: {}",
                            suggest::list(scope.iter().copied())
                        )
                    });
                return Err(self
                    .err(&at, format!("unknown input \"{input}\""))
                    .with_hint(hint));
            }
        }
        Ok(())
    }

    pub(crate) fn check_cycles(&self, transforms: &IndexMap<String, TransformSpec>) -> R<()> {
        // Iterative DFS with colours; report the first cycle found, in file order.
        #[derive(Clone, Copy, PartialEq)]
        enum Colour {
            White,
            Grey,
            Black,
        }
        let mut colour: HashMap<&str, Colour> = transforms
            .keys()
            .map(|k| (k.as_str(), Colour::White))
            .collect();
        for start in transforms.keys() {
            if colour[start.as_str()] != Colour::White {
                continue;
            }
            // stack of (node, next input index)
            let mut stack: Vec<(&str, usize)> = vec![(start.as_str(), 0)];
            colour.insert(start, Colour::Grey);
            while let Some(top) = stack.last_mut() {
                let (node, i) = *top;
                top.1 += 1;
                let inputs = transforms[node].inputs();
                if i >= inputs.len() {
                    colour.insert(node, Colour::Black);
                    stack.pop();
                    continue;
                }
                let input = inputs[i].as_str();
                match colour.get(input).copied() {
                    None | Some(Colour::Black) => {}
                    Some(Colour::White) => {
                        colour.insert(input, Colour::Grey);
                        stack.push((input, 0));
                    }
                    Some(Colour::Grey) => {
                        // The cycle: input -> ... -> node -> input, in data-flow order.
                        let from = stack.iter().position(|(n, _)| *n == input).unwrap_or(0);
                        let mut names: Vec<&str> = stack[from..].iter().map(|(n, _)| *n).collect();
                        names.reverse(); // data flows from inputs to readers
                        names.push(names[0]);
                        let idx = i.to_string();
                        return Err(self
                            .err(
                                &["transforms", node, "inputs", &idx],
                                format!("cycle among transforms: {}", names.join(" -> ")),
                            )
                            .with_hint("a transform cannot read its own output, directly or through other transforms"));
                    }
                }
            }
        }
        Ok(())
    }

    pub(crate) fn unread(&self, spec: &PipelineSpec) -> Vec<DslError> {
        let mut out = Vec::new();
        let read: HashSet<&str> = spec
            .transforms
            .values()
            .flat_map(|t| t.inputs())
            .chain(spec.sinks.values().flat_map(|s| s.inputs()))
            .map(String::as_str)
            .collect();
        let ids = spec
            .sources
            .keys()
            .map(|k| ("sources", k))
            .chain(spec.transforms.keys().map(|k| ("transforms", k)));
        let unread: Vec<(&str, &String)> =
            ids.filter(|(_, id)| !read.contains(id.as_str())).collect();
        for &(section, id) in unread.iter().take(MAX_WARNINGS) {
            {
                let what = describe(&[section.to_string(), id.to_string()]);
                out.push(
                    self.ctx
                        .at_key(
                            &[section, id],
                            format!("{what} is not read by any transform or sink"),
                        )
                        .with_hint(format!(
                            "add \"{id}\" to the inputs of a transform or sink, or remove it"
                        ))
                        .into_warning(),
                );
            }
        }
        if unread.len() > MAX_WARNINGS {
            let more = unread.len() - MAX_WARNINGS;
            out.push(
                DslError::new(
                    &self.ctx.file,
                    format!("... and {more} more ids nobody reads"),
                )
                .into_warning(),
            );
        }
        out
    }
}
