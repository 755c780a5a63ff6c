//! The second reading of a reply: look-alike letters folded to their Unicode
//! TS #39 skeletons, spaced, split and held-down letters joined, and lone
//! near-misses of a keyword; and a phone's reactions, which quote our text.

use super::*;

/// Whether the second reading could find anything the first did not: a
/// character outside ASCII letters (a look-alike, a digit in a word), a run
/// of single letters, a letter held down, or two short words that may be one
/// split keyword. Cheap, so that most replies skip the folding.
pub(super) fn may_fold(t: &[Token<'_>]) -> bool {
    let short = |w: &str| w.len() <= 3;
    t.iter().enumerate().any(|(i, token)| {
        let w = token.text;
        let next = t.get(i + 1).map_or("", |n| n.text);
        !w.bytes().all(|b| b.is_ascii_lowercase() || b == b'\'')
            || (w.len() == 1 && next.len() == 1)
            || w.as_bytes()
                .windows(3)
                .any(|r| matches!(r, [a, b, c] if a == b && b == c))
            || (short(w) && short(next) && !next.is_empty() && splits_a_keyword(w, next))
    })
}

/// Whether two words are the two halves of an ASCII opt-out keyword
/// ("st" "op"), without allocating.
pub(super) fn splits_a_keyword(first: &str, second: &str) -> bool {
    /// ASCII opt-out keywords of two to six letters, by length.
    static SHORT: LazyLock<[Vec<&'static str>; 7]> = LazyLock::new(|| {
        let mut by_len: [Vec<&'static str>; 7] = Default::default();
        for k in KEYWORDS.iter().filter(|k| k.intent == Intent::OptOut) {
            if k.word.bytes().all(|b| b.is_ascii_lowercase()) {
                if let Some(slot) = by_len.get_mut(k.word.len()) {
                    slot.push(k.word);
                }
            }
        }
        by_len
    });
    SHORT.get(first.len() + second.len()).is_some_and(|words| {
        words
            .iter()
            .any(|w| w.starts_with(first) && w.ends_with(second))
    })
}

/// The answer for a near-miss of keyword `k`.
pub(super) fn near_classification(k: &'static Keyword) -> Classification {
    Classification {
        intent: Intent::OptOut,
        tier: Tier::Doubtful,
        rule: "freetext.doubtful.near_keyword".to_owned(),
        matched: Some(k.word.to_owned()),
    }
}

/// A phone's reaction to an earlier text ("Liked “Your appointment…”",
/// "Reacted 👍 to “…”"): the quoted text is ours, so it is never read as
/// the person's words (it may well say "Reply STOP to opt out").
pub(super) fn reaction(normalized: &str) -> Option<Classification> {
    const VERBS: &[&str] = &[
        "liked",
        "loved",
        "disliked",
        "laughed at",
        "emphasized",
        "emphasised",
        "questioned",
    ];
    let quoted = |rest: &str| rest.starts_with('"') && rest.len() > 1;
    let verb = VERBS
        .iter()
        .find(|verb| {
            normalized
                .strip_prefix(**verb)
                .and_then(|rest| rest.strip_prefix(' '))
                .is_some_and(quoted)
        })
        .copied()
        .or_else(|| {
            // "reacted 👍 to “…”", "reacted ❤️ to: “…”"
            let rest = normalized.strip_prefix("reacted ")?;
            let head = rest.get(..rest.len().min(40))?;
            let at = head.find(" to")?;
            let after = rest.get(at + 3..)?.trim_start_matches(':').trim_start();
            quoted(after).then_some("reacted")
        })?;
    Some(Classification {
        intent: Intent::Other,
        tier: Tier::Clear,
        rule: "other.reaction".to_owned(),
        matched: Some(verb.to_owned()),
    })
}

/// The opt-out pass again over the folded body: look-alike letters folded
/// to their skeletons (Cyrillic `ѕтор`, Greek `ΣΤΟΠ` is not, `ST0P`), runs
/// of single letters joined (`S T O P`, `s.t.o.p`, `退 订`), short pieces
/// joined (`ST OP`). Then, when `near_miss` and nothing else was found, a
/// body that is one word besides filler, one or two letters from a
/// keyword (`STPO`, `unsubscibe`), is a doubtful opt-out.
pub(super) fn folded_opt_out(t: &[Token<'_>], near_miss: bool) -> Option<Classification> {
    let mut folded = String::new();
    let mut lookalike = false;
    let mut spaced = false;
    let mut stretched = false;
    let single = |i: usize| {
        let mut chars = text(t, i).chars();
        chars.next().is_some_and(char::is_alphanumeric) && chars.next().is_none()
    };
    let mut i = 0;
    while i < t.len() {
        if t.get(i).is_some_and(|token| token.break_before) {
            folded.push_str(". ");
        } else if !folded.is_empty() {
            folded.push(' ');
        }
        let run = (i..t.len()).take_while(|&j| single(j)).count();
        let words = if run >= 2 { run } else { 1 };
        spaced |= run >= 2;
        for j in i..i + words {
            // A letter held down ("stoppppp", "stooooop") counts once.
            let word = text(t, j);
            let mut chars = word.chars().peekable();
            while let Some(c) = chars.next() {
                let mut run = 1;
                while chars.peek() == Some(&c) {
                    chars.next();
                    run += 1;
                }
                let times = if run >= 3 {
                    stretched = true;
                    1
                } else {
                    run
                };
                for _ in 0..times {
                    lookalike |= fold_char(c, &mut folded);
                }
            }
        }
        i += words;
    }
    let tokens = Tokens::of(&folded);
    let f = tokens.as_slice();
    if let OptOutScan::Found(found) = opt_out(Lexicon::Folded, f) {
        if found.intent == Intent::OptOut {
            let mut classification = found.into_classification(f);
            if found.tier != Tier::Doubtful {
                classification.tier = Tier::Clear;
                classification.rule = if lookalike {
                    "freetext.revocation.lookalike"
                } else if spaced {
                    "freetext.revocation.spaced"
                } else if stretched {
                    "freetext.revocation.stretched"
                } else {
                    "freetext.revocation.joined"
                }
                .to_owned();
            }
            return Some(classification);
        }
    }
    if near_miss {
        return near_keyword(f).map(near_classification);
    }
    None
}

/// Real words one letter from an opt-out keyword, never read as a
/// near-miss of it.
pub(super) const NEAR_MISS_WORDS: &[&str] = &[
    "shop", "step", "stomp", "atop", "stow", "stoop", "quite", "quiet", "suit", "quiz", "quid",
    "quip", "cancer", "remote", "arrest", "pause", "paused",
];

/// The keyword a lone word (besides filler) misspells: Latin letters only,
/// at least four of them, at most one edit from a keyword of four to seven
/// letters or two from a longer one. Keywords with common neighbours in
/// their own language (`alto`, `para`, `sair`, `dung`…) are left out.
pub(super) fn near_keyword(t: &[Token<'_>]) -> Option<&'static Keyword> {
    let mut words = t.iter().filter(|token| !is_filler(token.text));
    let word = words.next()?.text;
    if words.next().is_some()
        || word.len() < 4
        || !word.bytes().all(|b| b.is_ascii_lowercase())
        || NEAR_MISS_WORDS.contains(&word)
        || BY_FIRST_WORD.contains_key(word)
        || is_texting_word(word)
    {
        return None;
    }
    // Spellings of STOP as people type them that no edit distance reaches.
    if matches!(word, "stahp" | "stawp" | "stp" | "stpo" | "sotp" | "stooop") {
        return KEYWORDS.iter().find(|k| k.word == "stop");
    }
    KEYWORDS.iter().find(|k| {
        k.intent == Intent::OptOut
            && k.in_sentence
            && k.word.len() >= 4
            && k.word.bytes().all(|b| b.is_ascii_lowercase())
            && !matches!(
                k.word,
                "alto" | "basta" | "pare" | "hinto" | "tigil" | "anile" | "kanpe"
            )
            && edit_distance(word, k.word) <= if k.word.len() >= 8 { 2 } else { 1 }
    })
}

/// Optimal string alignment distance (insertions, deletions,
/// substitutions and adjacent transpositions) between two ASCII words.
pub(super) fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len().abs_diff(b.len()) > 2 {
        return 3;
    }
    let width = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * width];
    let at = |i: usize, j: usize| i * width + j;
    for i in 0..=a.len() {
        if let Some(cell) = d.get_mut(at(i, 0)) {
            *cell = i;
        }
    }
    for j in 0..=b.len() {
        if let Some(cell) = d.get_mut(at(0, j)) {
            *cell = j;
        }
    }
    let get = |d: &[usize], i: usize, j: usize| d.get(at(i, j)).copied().unwrap_or(usize::MAX);
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let (x, y) = (a.get(i - 1), b.get(j - 1));
            let cost = usize::from(x != y);
            let mut best = get(&d, i - 1, j)
                .saturating_add(1)
                .min(get(&d, i, j - 1).saturating_add(1))
                .min(get(&d, i - 1, j - 1).saturating_add(cost));
            if i > 1 && j > 1 && x == b.get(j - 2) && a.get(i - 2) == y {
                best = best.min(get(&d, i - 2, j - 2).saturating_add(1));
            }
            if let Some(cell) = d.get_mut(at(i, j)) {
                *cell = best;
            }
        }
    }
    get(&d, a.len(), b.len())
}

// ---------------------------------------------------------------------------
// Confusables

/// Folds one character, in its written case, for look-alike matching
/// (Unicode TS #39): its skeleton when that is plain ASCII letters or digits
/// (Cyrillic `с`, Greek `Ν`, the digit `0`), else the skeleton of its lower
/// or upper case form (Cyrillic `т` has the skeleton `ᴛ`, its capital `T`);
/// otherwise the character itself; then lower case. ASCII letters are only
/// lower-cased (the skeleton of `I` is `l`). Returns whether it changed.
pub(super) fn fold_char(c: char, out: &mut String) -> bool {
    if c.is_ascii_alphabetic() || !c.is_alphanumeric() {
        out.push(c.to_ascii_lowercase());
        return false;
    }
    for candidate in std::iter::once(c)
        .chain(c.to_lowercase())
        .chain(c.to_uppercase())
    {
        let skeleton: String = skeleton(candidate.encode_utf8(&mut [0; 4])).collect();
        if !skeleton.is_empty() && skeleton.chars().all(|s| s.is_ascii_alphanumeric()) {
            let folded = skeleton.to_ascii_lowercase();
            let changed = !c.to_lowercase().eq(folded.chars());
            out.push_str(&folded);
            return changed;
        }
    }
    out.extend(c.to_lowercase());
    false
}

/// [`fold_char`] over a normalized string.
pub(super) fn fold_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        fold_char(c, &mut out);
    }
    out
}
