//! How a model name finds its catalog entry: an exact id or alias, else the
//! longest id or alias that the name extends by a snapshot suffix only
//! (`gpt-4o-2024-08-06`, `claude-sonnet-4-20250514`, `gpt-4-0613`,
//! `gemini-2.0-flash-001`). Any other suffix (`gpt-4o-mini-search-preview`)
//! is another model, so it is not priced as its family.

/// The family name `name` is a snapshot of, when it is `family` followed by
/// one snapshot suffix (see [`is_snapshot_suffix`]).
pub(crate) fn snapshot_family(name: &str) -> impl Iterator<Item = &str> {
    // Every `-` could start the suffix; each candidate family is checked by
    // the caller, longest first.
    name.char_indices()
        .rev()
        .filter(|&(_, c)| c == '-')
        .map(|(index, _)| index)
        .filter(move |&index| is_snapshot_suffix(&name[index..]))
        .map(move |index| &name[..index])
}

/// `-YYYY-MM-DD`, `-YYYYMMDD`, `-MMDD` or `-NNN`.
pub(crate) fn is_snapshot_suffix(suffix: &str) -> bool {
    let Some(rest) = suffix.strip_prefix('-') else {
        return false;
    };
    let digits = |text: &str, n: usize| text.len() == n && text.bytes().all(|b| b.is_ascii_digit());
    match rest.split('-').collect::<Vec<_>>().as_slice() {
        [year, month, day] => digits(year, 4) && digits(month, 2) && digits(day, 2),
        [one] => digits(one, 8) || digits(one, 4) || digits(one, 3),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_suffixes_are_dates_and_version_numbers_only() {
        for suffix in ["-2024-08-06", "-20250514", "-0613", "-001"] {
            assert!(is_snapshot_suffix(suffix), "{suffix}");
        }
        for suffix in [
            "",
            "-",
            "-mini",
            "-2024-8-06",
            "-latest",
            "-preview",
            "-12",
            "-123456",
            "2024",
            "-search-preview",
            "-2024-08-06-x",
        ] {
            assert!(!is_snapshot_suffix(suffix), "{suffix}");
        }
    }

    #[test]
    fn families_come_longest_first() {
        let families: Vec<_> = snapshot_family("gpt-4o-2024-08-06").collect();
        assert_eq!(families, ["gpt-4o"]);
        let families: Vec<_> = snapshot_family("claude-opus-4-1-20250805").collect();
        assert_eq!(families, ["claude-opus-4-1"]);
        assert_eq!(snapshot_family("gpt-4o-mini-search-preview").count(), 0);
        assert_eq!(snapshot_family("gpt-4o").count(), 0);
    }
}
