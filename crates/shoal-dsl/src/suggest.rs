//! `did you mean "..."?` — the closest candidate by edit distance.

/// The candidate closest to `word`, if it is close enough to be a likely typo.
pub(crate) fn closest<'a, I>(word: &str, candidates: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    let lower = word.to_lowercase();
    let mut best: Option<(usize, &'a str)> = None;
    for c in candidates {
        if c == word {
            continue;
        }
        let cl = c.to_lowercase();
        let d = if cl == lower {
            0
        } else {
            strsim::damerau_levenshtein(&lower, &cl)
        };
        let len = word.chars().count().max(c.chars().count());
        let limit = (len / 3).max(1);
        if d <= limit && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| c)
}

/// `did you mean "x"?` when a close candidate exists.
pub(crate) fn did_you_mean<'a, I>(word: &str, candidates: I) -> Option<String>
where
    I: IntoIterator<Item = &'a str>,
{
    closest(word, candidates).map(|c| format!("did you mean \"{c}\"?"))
}

/// `a, b, c` for messages; long lists end with `... (N more)`.
pub(crate) fn list<'a, I>(items: I) -> String
where
    I: IntoIterator<Item = &'a str>,
{
    const MAX: usize = 15;
    let mut out = String::new();
    let mut n = 0;
    for item in items {
        if n < MAX {
            if n > 0 {
                out.push_str(", ");
            }
            out.push_str(item);
        }
        n += 1;
    }
    if n > MAX {
        out.push_str(&format!(", ... ({} more)", n - MAX));
    }
    out
}

/// A hint: the suggestion if there is one, then the valid choices.
pub(crate) fn hint_with_choices(word: &str, choices: &[&str], what: &str) -> String {
    let valid = format!("valid {what}: {}", list(choices.iter().copied()));
    match did_you_mean(word, choices.iter().copied()) {
        Some(dym) => format!("{dym} ({valid})"),
        None => valid,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        let keys = ["type", "inputs", "where", "parallelism", "key"];
        assert_eq!(closest("wher", keys), Some("where"));
        assert_eq!(closest("input", keys), Some("inputs"));
        assert_eq!(closest("paralelism", keys), Some("parallelism"));
        assert_eq!(closest("Where", keys), Some("where"));
        assert_eq!(closest("zzzzzz", keys), None);
        assert_eq!(closest("txn", ["txns", "big"]), Some("txns"));
        assert_eq!(
            closest("transaction", ["transactions", "big"]),
            Some("transactions")
        );
        assert_eq!(
            did_you_mean("cvs", ["jsonl", "csv"]).as_deref(),
            Some("did you mean \"csv\"?")
        );
        assert_eq!(
            hint_with_choices("filtr", &["filter", "sql"], "types"),
            "did you mean \"filter\"? (valid types: filter, sql)"
        );
    }
}
