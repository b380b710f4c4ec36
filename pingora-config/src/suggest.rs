//! "Did you mean ...?": the closest valid name to a misspelt one.

/// Edit distance between `a` and `b` counting insertions, deletions, substitutions and
/// swaps of two adjacent characters (optimal string alignment).
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // rows[i][j] = distance between a[..i] and b[..j]; three rolling rows suffice.
    let mut before_prev: Vec<usize> = vec![0; b.len() + 1];
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur: Vec<usize> = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        cur[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(before_prev[j - 2] + 1);
            }
            cur[j] = best;
        }
        std::mem::swap(&mut before_prev, &mut prev);
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The candidate closest to `wrong`, if it is close enough to be a plausible typo.
///
/// A difference in letter case alone always counts as close. Otherwise the allowed distance
/// grows with the length of the word: 1 for up to 3 characters, 2 up to 8, 3 beyond.
pub fn closest<'a, I>(wrong: &str, candidates: I) -> Option<String>
where
    I: IntoIterator<Item = &'a str>,
{
    let lowered = wrong.to_ascii_lowercase();
    let mut best: Option<(usize, &str)> = None;
    for candidate in candidates {
        if candidate == wrong {
            continue;
        }
        let distance = if candidate.eq_ignore_ascii_case(wrong) {
            0
        } else {
            edit_distance(&lowered, &candidate.to_ascii_lowercase())
        };
        let allowed = match candidate.chars().count() {
            0..=3 => 1,
            4..=8 => 2,
            _ => 3,
        };
        if distance <= allowed && best.is_none_or(|(d, _)| distance < d) {
            best = Some((distance, candidate));
        }
    }
    best.map(|(_, name)| name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(edit_distance("", ""), 0);
        assert_eq!(edit_distance("abc", ""), 3);
        assert_eq!(edit_distance("thread", "threads"), 1);
        assert_eq!(edit_distance("thraeds", "threads"), 1);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn suggests_close_names_only() {
        let names = ["threads", "work_stealing", "services"];
        assert_eq!(closest("thread", names), Some("threads".into()));
        assert_eq!(closest("Threads", names), Some("threads".into()));
        assert_eq!(closest("servics", names), Some("services".into()));
        assert_eq!(closest("zzz", names), None);
        assert_eq!(closest("threads", names), None);
        assert_eq!(
            closest("round_robbin", ["round_robin", "random"]),
            Some("round_robin".into())
        );
        assert_eq!(closest("lbb", ["lb", "tls"]), Some("lb".into()));
    }
}
