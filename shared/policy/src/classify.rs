//! Inbound reply classification: opt-out, help, opt-in, confirm, reschedule
//! or other, each with a tier (exact, clear, doubtful) and the id of the rule
//! that decided it.
//!
//! # Sources
//! - 47 CFR 64.1200(a)(10) (FCC 24-24, in force 2025-04-11): a reply of
//!   *stop, quit, end, revoke, opt out, cancel* or *unsubscribe* is a per se
//!   revocation, and any other wording a reasonable person reads as one must
//!   be honoured too. Rule ids `keyword.fcc.*`.
//! - Carrier and CTIA keyword lists: STOPALL, OPTOUT, ARRET, REMOVE, TD
//!   (`keyword.carrier.*`); HELP, INFO (`keyword.ctia.*`); START, UNSTOP, YES
//!   after an opt-out (`keyword.carrier.*`, `keyword.ctia.yes`).
//! - Spanish: ALTO, PARAR, BASTA, CANCELAR (`keyword.es.*`), AYUDA, SI.
//! - compliance-rules §3: do better than Twilio (exact single word only) and
//!   AWS (any body that begins with a keyword, so "Stop by at 3pm?" opts out).
//!
//! # Tiers
//! - `Exact`: the body, once punctuation, emoji, case, width and spacing are
//!   ignored, is only keywords ("STOP", " stop. ", "ＳＴＯＰ", "Opt-Out",
//!   "STOP STOP").
//! - `Clear`: a keyword with politeness or filler ("STOP PLEASE", "Stop. Thank
//!   you", "can you stop?"), a keyword about the texts ("stop texting me"), or
//!   free text a reasonable person reads that way ("don't text me anymore",
//!   "take me off your list", "wrong number").
//! - `Doubtful`: an opt-out keyword inside a sentence that may be about
//!   something else ("I want to cancel my appointment"), and a few phrases
//!   that may be revocations ("not interested"). Callers suppress **and**
//!   queue a human review with the rule id as the reason.
//!
//! # Precedence and design choices
//! - Opt-out wins: if any reading is an opt-out, at any tier, the result is an
//!   opt-out; help, opt-in and the reply grammar are consulted only after.
//! - A keyword is a whole word: "stopwatch", "endless", "unstoppable",
//!   "quitting time" are not keywords.
//! - A keyword right after a negation in the same clause is not a revocation
//!   ("don't stop reminding me", "please don't stop", "never stop") and gives
//!   `Other` with rule `other.negated_keyword`. Only the two words before the
//!   keyword are looked at, so "I don't want to stop ..." stays `Doubtful`:
//!   when unsure, the classifier errs towards suppression.
//! - STOP used as a verb of another sense ("stop by", "stop in", "stop at",
//!   "bus stop"), END as in "the end of the day" and QUIT with what was quit
//!   ("I quit smoking") give `Other` with rule `other.keyword_other_sense`,
//!   not an opt-out. "stop at once" and "quit texting me" are still one.
//! - Keywords in every language of [`KEYWORDS`]; when the plain reading
//!   finds no opt-out, a second reading folds look-alike letters (TS #39
//!   skeletons), joins spaced letters and squeezes held-down letters, and a
//!   lone near-miss of a keyword is a doubtful opt-out (see `docs/rules.md`).
//! - A phone's reaction (`Liked “…”`) quotes our own text and is `Other`.
//! - "can you stop?" is `Clear`: a request to stop, in reply to a text, reads
//!   as a revocation ("can", "could", "will", "would", "you" are fillers).
//! - "wrong number" is a `Clear` revocation: the person is not the patient.
//! - YES is an opt-in only when the sender has this number opted out
//!   ([`ReplyContext::opted_out`]). Otherwise it is a free-text confirmation
//!   (`Confirm`, `Clear`) when the last template asked for one (it has confirm
//!   codes) and `Other` when not. YES and SI are reserved words: a template
//!   may never use them as codes, because after an opt-out they mean opt-in.
//!   START, UNSTOP and SUBSCRIBE are opt-ins whatever the state; restoring
//!   only what was revoked is the consent ledger's job.
//! - A free-text confirmation ("confirm", "confirmed", "I'll be there") or
//!   reschedule request ("can we reschedule") is recognised only when the
//!   context has a reply grammar: without one there is no prompt to answer.
//!   A message that asks to reschedule and also confirms is a reschedule.
//!
//! # Speed
//! No regular expressions: one allocation for the normalized text, the words
//! kept as slices of it on the stack (a `Vec` only past 32 words), and
//! keyword tables as `match` on `&str`.

use std::collections::HashMap;
use std::sync::LazyLock;

use serde::{Deserialize, Serialize};
use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;

use unicode_security::confusable_detection::skeleton;

use crate::PolicyError;

mod keywords;

pub use keywords::{Keyword, KEYWORDS, LANGUAGES};

/// Version of the classifier's rules and word lists.
pub const CLASSIFIER_VERSION: &str = "2026-12-06";

/// What a reply asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Intent {
    /// Revoke consent (suppress at once).
    OptOut,
    /// Ask for help (send the HELP text).
    Help,
    /// Opt back in (a recorded consent event).
    OptIn,
    /// Confirm the appointment the last template asked about.
    Confirm,
    /// Ask to reschedule that appointment.
    Reschedule,
    /// Anything else.
    Other,
}

/// How sure the classifier is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    /// The body is only the keyword or code.
    Exact,
    /// The intent is plain to a reasonable reader.
    Clear,
    /// The intent may be this; a human should review.
    Doubtful,
}

/// The reply codes of the template version last sent, e.g. confirm
/// `["C", "1"]`, reschedule `["R", "2"]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyGrammar {
    /// Codes that confirm.
    pub confirm: Vec<String>,
    /// Codes that ask to reschedule.
    pub reschedule: Vec<String>,
}

impl ReplyGrammar {
    /// Checks the codes: each must be one word of letters or digits, none may
    /// be a reserved keyword (every opt-out, help and opt-in word, including
    /// CANCEL, STOP, END, QUIT and YES; compliance-rules §3), and no code may
    /// appear twice.
    pub fn validate(&self) -> Result<(), PolicyError> {
        let invalid = |reason: String| PolicyError::RuleTable {
            table: "reply_grammar",
            reason,
        };
        let codes = self.confirm.iter().chain(self.reschedule.iter());
        for (index, code) in codes.clone().enumerate() {
            let normalized = normalize(code);
            if normalized.is_empty() {
                return Err(invalid("a code is empty".to_owned()));
            }
            let tokens = Tokens::of(&normalized);
            let word = match tokens.as_slice() {
                [only] if only.text == normalized => only.text,
                _ => {
                    return Err(invalid(format!(
                        "code {normalized:?} is not one word of letters or digits"
                    )))
                }
            };
            if is_reserved(word) {
                return Err(invalid(format!(
                    "code {normalized:?} is a reserved keyword"
                )));
            }
            if codes
                .clone()
                .skip(index + 1)
                .any(|other| normalize(other) == normalized)
            {
                return Err(invalid(format!("code {normalized:?} appears twice")));
            }
        }
        Ok(())
    }
}

/// What the classifier knows about the conversation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyContext {
    /// The reply grammar of the template version last sent, if it had one.
    pub grammar: Option<ReplyGrammar>,
    /// The sender currently has this number opted out, so YES means opt-in.
    pub opted_out: bool,
}

/// The classifier's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Classification {
    /// What the reply asks for.
    pub intent: Intent,
    /// How sure the classifier is.
    pub tier: Tier,
    /// Stable id of the rule that decided, e.g. `keyword.fcc.stop`,
    /// `freetext.revocation.stop_texting`, `grammar.confirm`.
    pub rule: String,
    /// The keyword, code or phrase matched, normalized (never the whole body
    /// unless the body is only that).
    pub matched: Option<String>,
}

/// Folds a body for word matching: compatibility decomposition (NFKD, so
/// full-width, circled and mathematical letters become plain ones, as NFKC
/// would), combining marks dropped (so accents fold: "arrêt" = "arret",
/// "más" = "mas"), lower case, curly quotes and apostrophes to `'` and `"`,
/// Unicode dashes to `-`, zero-width characters dropped, runs of whitespace
/// to one space, trimmed. Punctuation and emoji are kept.
pub fn normalize(body: &str) -> String {
    normalize_with(body, true)
}

/// [`normalize`], keeping case when `lower` is false (look-alike folding
/// needs it: Greek `Ν` looks like N, `ν` like v).
fn normalize_with(body: &str, lower: bool) -> String {
    let mut out = Normalizer {
        text: String::with_capacity(body.len()),
        space: false,
    };
    if body.is_ascii() {
        // ASCII is already in every normal form; skip the decomposition.
        for b in body.bytes() {
            out.push(char::from(if lower { b.to_ascii_lowercase() } else { b }));
        }
    } else {
        for c in body.nfkd() {
            if is_combining_mark(c) {
                continue;
            }
            // Vietnamese đ has no decomposition: fold it by hand.
            let c = match c {
                '\u{0111}' => 'd',
                '\u{0110}' => 'D',
                other => other,
            };
            if lower {
                for lower in c.to_lowercase() {
                    out.push(lower);
                }
            } else {
                out.push(c);
            }
        }
        // Decomposition splits Hangul syllables into jamo: compose them
        // again so that Korean words compare as written.
        if out
            .text
            .chars()
            .any(|c| ('\u{1100}'..='\u{11FF}').contains(&c))
        {
            return out.text.nfc().collect();
        }
    }
    out.text
}

/// Builds the normalized text one character at a time.
struct Normalizer {
    text: String,
    /// A whitespace run is pending: emit one space before the next character.
    space: bool,
}

impl Normalizer {
    fn push(&mut self, c: char) {
        let c = match c {
            '\u{2018}' | '\u{2019}' | '\u{201A}' | '\u{201B}' | '\u{2032}' | '\u{02BC}' | '`' => {
                '\''
            }
            '\u{201C}' | '\u{201D}' | '\u{201E}' | '\u{201F}' | '\u{2033}' => '"',
            '\u{2010}'..='\u{2015}' | '\u{2212}' => '-',
            // Soft hyphen, zero-width space/joiners, direction marks, word
            // joiner, BOM: invisible, and used to dodge keyword filters.
            '\u{00AD}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{2060}'..='\u{2064}'
            | '\u{FEFF}' => return,
            other => other,
        };
        if c.is_whitespace() || c.is_control() {
            self.space = !self.text.is_empty();
            return;
        }
        if self.space {
            self.text.push(' ');
            self.space = false;
        }
        self.text.push(c);
    }
}

/// Classifies an inbound reply. Never fails: anything unrecognised is
/// `Other`.
pub fn classify(body: &str, ctx: &ReplyContext) -> Classification {
    let normalized = normalize(body);
    if let Some(reaction) = reaction(&normalized) {
        return reaction;
    }
    // "wrong #": the sign is not a word, so say it.
    let normalized = if normalized.contains('#') {
        normalized
            .replace("wrong #", "wrong number")
            .replace("wrong#", "wrong number")
    } else {
        normalized
    };
    let tokens = Tokens::of(&normalized);
    let t = tokens.as_slice();
    let found = classify_tokens(t, ctx);
    if found.intent == Intent::OptOut {
        return found.into_classification(t);
    }
    // Opt-out wins: look again with look-alike letters and spaced letters
    // folded, and for near-misses of a keyword written alone.
    let near_miss = found.intent == Intent::Other;
    if !may_fold(t) {
        // Plain lower-case words with nothing to fold, join or squeeze (most
        // replies): only a near-miss of a keyword is left to look for.
        return near_miss
            .then(|| near_keyword(t))
            .flatten()
            .map_or_else(|| found.into_classification(t), near_classification);
    }
    let cased = normalize_with(body, false);
    let cased_tokens = Tokens::of(&cased);
    folded_opt_out(cased_tokens.as_slice(), near_miss)
        .unwrap_or_else(|| found.into_classification(t))
}

/// Whether the second reading could find anything the first did not: a
/// character outside ASCII letters (a look-alike, a digit in a word), a run
/// of single letters, a letter held down, or two short words that may be one
/// split keyword. Cheap, so that most replies skip the folding.
fn may_fold(t: &[Token<'_>]) -> bool {
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
fn splits_a_keyword(first: &str, second: &str) -> bool {
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
fn near_classification(k: &'static Keyword) -> Classification {
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
fn reaction(normalized: &str) -> Option<Classification> {
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
fn folded_opt_out(t: &[Token<'_>], near_miss: bool) -> Option<Classification> {
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
const NEAR_MISS_WORDS: &[&str] = &[
    "shop", "step", "stomp", "atop", "stow", "stoop", "quite", "quiet", "suit", "quiz", "quid",
    "quip", "cancer", "remote", "arrest", "pause", "paused",
];

/// The keyword a lone word (besides filler) misspells: Latin letters only,
/// at least four of them, at most one edit from a keyword of four to seven
/// letters or two from a longer one. Keywords with common neighbours in
/// their own language (`alto`, `para`, `sair`, `dung`…) are left out.
fn near_keyword(t: &[Token<'_>]) -> Option<&'static Keyword> {
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
fn edit_distance(a: &str, b: &str) -> usize {
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
// Words

/// A word of the normalized body.
#[derive(Debug, Clone, Copy, Default)]
struct Token<'a> {
    text: &'a str,
    /// Clause punctuation (. , ! ? ; :) separates it from the previous word.
    break_before: bool,
}

/// Words kept on the stack up to this many.
const INLINE_TOKENS: usize = 32;

/// The words of a normalized body: maximal runs of letters and digits, with
/// apostrophes inside a word kept ("don't").
#[derive(Debug)]
struct Tokens<'a> {
    inline: [Token<'a>; INLINE_TOKENS],
    len: usize,
    /// All words, once there are more than `INLINE_TOKENS`.
    spill: Vec<Token<'a>>,
}

impl<'a> Tokens<'a> {
    fn of(text: &'a str) -> Self {
        let mut tokens = Self {
            inline: [Token::default(); INLINE_TOKENS],
            len: 0,
            spill: Vec::new(),
        };
        let mut start: Option<usize> = None;
        let mut pending_break = false;
        let mut chars = text.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            if c.is_alphanumeric() {
                start.get_or_insert(i);
                continue;
            }
            if c == '\''
                && start.is_some()
                && chars
                    .peek()
                    .is_some_and(|&(_, next)| next.is_alphanumeric())
            {
                continue;
            }
            if let Some(s) = start.take() {
                tokens.push(Token {
                    text: text.get(s..i).unwrap_or_default(),
                    break_before: pending_break,
                });
                pending_break = false;
            }
            if matches!(c, '.' | ',' | '!' | '?' | ';' | ':') && !tokens.is_empty() {
                pending_break = true;
            }
        }
        if let Some(s) = start {
            tokens.push(Token {
                text: text.get(s..).unwrap_or_default(),
                break_before: pending_break,
            });
        }
        tokens
    }

    fn is_empty(&self) -> bool {
        self.len == 0 && self.spill.is_empty()
    }

    fn push(&mut self, token: Token<'a>) {
        if !self.spill.is_empty() {
            self.spill.push(token);
        } else if let Some(slot) = self.inline.get_mut(self.len) {
            *slot = token;
            self.len += 1;
        } else {
            self.spill.extend_from_slice(&self.inline);
            self.spill.push(token);
        }
    }

    fn as_slice(&self) -> &[Token<'a>] {
        if self.spill.is_empty() {
            self.inline.get(..self.len).unwrap_or_default()
        } else {
            &self.spill
        }
    }
}

/// The text of word `i`, or "" past the end.
fn text<'a>(t: &[Token<'a>], i: usize) -> &'a str {
    t.get(i).map_or("", |token| token.text)
}

/// Whether words `i` and `i + 1` are in the same clause (and both exist).
fn joined(t: &[Token<'_>], i: usize) -> bool {
    t.get(i).is_some() && t.get(i + 1).is_some_and(|next| !next.break_before)
}

// ---------------------------------------------------------------------------
// Word tables

/// FNV-1a: the keyword maps are looked up several times per word of every
/// reply, with short keys, where SipHash's setup costs more than the hash.
#[derive(Default)]
struct Fnv(u64);

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut hash = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for byte in bytes {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = hash;
    }
}

type FnvMap<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<Fnv>>;

/// The keywords by their first word, each with its length in words,
/// longest first.
type ByFirstWord = FnvMap<&'static str, Vec<(&'static Keyword, usize)>>;

static BY_FIRST_WORD: LazyLock<ByFirstWord> = LazyLock::new(|| {
    let mut map: ByFirstWord = FnvMap::default();
    for k in KEYWORDS {
        let mut words = k.word.split(' ');
        let first = words.next().unwrap_or_default();
        map.entry(first).or_default().push((k, 1 + words.count()));
    }
    for entries in map.values_mut() {
        entries.sort_by_key(|entry| std::cmp::Reverse(entry.1));
    }
    map
});

/// Opt-out keywords by their confusable fold (see [`fold_char`]), with and
/// without the spaces of a multi-word keyword.
static FOLDED: LazyLock<FnvMap<String, &'static Keyword>> = LazyLock::new(|| {
    let mut map = FnvMap::default();
    for k in KEYWORDS.iter().filter(|k| k.intent == Intent::OptOut) {
        let upper = k.word.to_uppercase();
        for form in [k.word, upper.as_str()] {
            map.entry(fold_str(form)).or_insert(k);
            map.entry(fold_str(&form.replace(' ', ""))).or_insert(k);
        }
    }
    map
});

/// Which table a scan reads: the normalized words, or their folds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lexicon {
    Plain,
    Folded,
}

/// The keyword starting at word `i` that `want` accepts, and how many words
/// it spans (the longest match).
fn keyword_at(
    t: &[Token<'_>],
    i: usize,
    want: impl Fn(&Keyword) -> bool,
) -> Option<(&'static Keyword, usize)> {
    let entries = BY_FIRST_WORD.get(text(t, i))?;
    entries
        .iter()
        .find(|(k, len)| {
            want(k)
                && k.word
                    .split(' ')
                    .enumerate()
                    .all(|(n, word)| n < *len && text(t, i + n) == word)
        })
        .copied()
}

/// An opt-out keyword starting at word `i`.
fn opt_out_at(lex: Lexicon, t: &[Token<'_>], i: usize) -> Option<(&'static Keyword, usize)> {
    match lex {
        Lexicon::Plain => keyword_at(t, i, |k| k.intent == Intent::OptOut),
        Lexicon::Folded => {
            // One to three words, with or without the spaces between them
            // ("st op", "opt out"); pieces past the first are short, so two
            // ordinary words never join into a keyword.
            for len in (1..=3usize).rev() {
                if i + len > t.len() {
                    continue;
                }
                let words = t.get(i..i + len).unwrap_or_default();
                let spaced = words.iter().map(|w| w.text).collect::<Vec<_>>();
                if let Some(k) = FOLDED.get(&spaced.join(" ")) {
                    return Some((k, len));
                }
                if len > 1 && spaced.iter().all(|w| w.chars().count() <= 3) {
                    if let Some(k) = FOLDED.get(&spaced.concat()) {
                        return Some((k, len));
                    }
                }
            }
            None
        }
    }
}

/// Affixes around a keyword written without spaces that do not change it:
/// please, I want, thanks, the particles and endings of a polite request.
const UNSPACED_FILLER: &[&str] = &[
    "我要",
    "我想",
    "请",
    "請",
    "麻烦",
    "麻煩",
    "帮我",
    "幫我",
    "谢谢",
    "謝謝",
    "了",
    "吧",
    "的",
    "所有",
    "全部",
    "短信",
    "简讯",
    "簡訊",
    "信息",
    "訊息",
    "해주세요",
    "주세요",
    "하세요",
    "합니다",
    "해요",
    "해",
    "요",
    "부탁",
    "드립니다",
    "문자",
    "모두",
];

/// An opt-out keyword inside a longer word of a script written without
/// spaces, and whether the rest of the word is only polite filler.
fn unspaced_opt_out(word: &str) -> Option<(&'static Keyword, bool)> {
    if word.is_ascii() {
        return None;
    }
    let k = KEYWORDS
        .iter()
        .find(|k| k.unspaced && k.intent == Intent::OptOut && word.contains(k.word))?;
    let mut rest = word.replacen(k.word, "", 1);
    // Strip filler affixes, longest first, until nothing is left or nothing
    // more comes off.
    loop {
        let before = rest.len();
        for affix in UNSPACED_FILLER {
            rest = rest.replace(affix, "");
        }
        if rest.is_empty() || rest.len() == before {
            break;
        }
    }
    Some((k, rest.is_empty()))
}

/// Words a template may never use as a reply code (compliance-rules §3):
/// every single-word keyword, and the words of "opt out".
fn is_reserved(w: &str) -> bool {
    KEYWORDS
        .iter()
        .any(|k| k.word == w || (k.unspaced && w.contains(k.word)))
        || matches!(w, "opt" | "out")
}

// ---------------------------------------------------------------------------
// Confusables

/// Folds one character, in its written case, for look-alike matching
/// (Unicode TS #39): its skeleton when that is plain ASCII letters or digits
/// (Cyrillic `с`, Greek `Ν`, the digit `0`), else the skeleton of its lower
/// or upper case form (Cyrillic `т` has the skeleton `ᴛ`, its capital `T`);
/// otherwise the character itself; then lower case. ASCII letters are only
/// lower-cased (the skeleton of `I` is `l`). Returns whether it changed.
fn fold_char(c: char, out: &mut String) -> bool {
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
fn fold_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        fold_char(c, &mut out);
    }
    out
}

/// Politeness and filler around a keyword that do not change its meaning.
fn is_filler(w: &str) -> bool {
    matches!(
        w,
        "please"
            | "pls"
            | "plz"
            | "plse"
            | "pleaseee"
            | "thanks"
            | "thank"
            | "thankyou"
            | "thx"
            | "tx"
            | "ty"
            | "tks"
            | "you"
            | "u"
            | "now"
            | "me"
            | "us"
            | "asap"
            | "immediately"
            | "already"
            | "ok"
            | "okay"
            | "k"
            | "again"
            | "right"
            | "just"
            | "all"
            | "this"
            | "the"
            | "these"
            | "them"
            | "those"
            | "from"
            | "my"
            | "your"
            | "number"
            | "list"
            | "kindly"
            | "can"
            | "could"
            | "will"
            | "would"
            | "sir"
            | "maam"
            | "ma'am"
            | "hi"
            | "hello"
            | "hey"
            | "help"
            | "forever"
            | "permanently"
            | "once"
            | "por"
            | "favor"
            | "gracias"
            | "ahora"
            | "ya"
            | "todo"
            | "todos"
            // Please and thanks in the keyword languages.
            | "merci"
            | "svp"
            | "stp"
            | "bitte"
            | "danke"
            | "favore"
            | "grazie"
            | "obrigado"
            | "obrigada"
            | "xin"
            | "cam"
            | "po"
            | "salamat"
            | "пожалуиста"
            | "спасибо"
            | "tanpri"
            | "mesi"
            | "فضلك"
            | "شكرا"
            | "tout"
            | "alle"
            | "tutto"
            | "tudo"
            | "все"
    )
}

/// Words about the messages themselves ("stop *texting* me").
fn is_texting_word(w: &str) -> bool {
    matches!(
        w,
        "text"
            | "texts"
            | "texting"
            | "txt"
            | "txts"
            | "txting"
            | "message"
            | "messages"
            | "messaging"
            | "msg"
            | "msgs"
            | "sms"
            | "reminder"
            | "reminders"
            | "reminding"
            | "notification"
            | "notifications"
            | "alert"
            | "alerts"
            | "contacting"
            | "calling"
            | "sending"
            | "send"
            | "spam"
            | "subscription"
            | "subscriptions"
            | "mensaje"
            | "mensajes"
            | "texto"
            | "textos"
            | "bothering"
            | "harassing"
            | "spamming"
            | "pestering"
            | "bugging"
            | "nachrichten"
            | "messaggi"
            | "mensagens"
    )
}

/// Verbs that, negated, ask not to be contacted ("don't *text* me").
fn is_contact_verb(w: &str) -> bool {
    matches!(
        w,
        "text"
            | "txt"
            | "message"
            | "msg"
            | "sms"
            | "contact"
            | "send"
            | "call"
            | "email"
            | "bother"
            | "reach"
            | "texting"
            | "messaging"
            | "contacting"
    )
}

/// Negations that cancel a following keyword ("don't stop").
fn is_negator(w: &str) -> bool {
    w.ends_with("n't")
        || matches!(
            w,
            "dont"
                | "not"
                | "never"
                | "cannot"
                | "cant"
                | "wont"
                | "didnt"
                | "doesnt"
                | "shouldnt"
                | "wouldnt"
                | "isnt"
                | "arent"
        )
}

// ---------------------------------------------------------------------------
// Classification

/// What matched, as a static canonical form or a span of words.
#[derive(Debug, Clone, Copy)]
enum Matched {
    None,
    Static(&'static str),
    /// Words `start..end` of the body, joined by single spaces.
    Span(usize, usize),
}

/// The internal result, converted to a [`Classification`] at the end so
/// that only the final answer allocates.
#[derive(Debug, Clone, Copy)]
struct Found {
    intent: Intent,
    tier: Tier,
    rule: &'static str,
    matched: Matched,
}

impl Found {
    fn new(intent: Intent, tier: Tier, rule: &'static str, matched: Matched) -> Self {
        Self {
            intent,
            tier,
            rule,
            matched,
        }
    }

    fn into_classification(self, t: &[Token<'_>]) -> Classification {
        let matched = match self.matched {
            Matched::None => None,
            Matched::Static(s) => Some(s.to_owned()),
            Matched::Span(start, end) => {
                let mut joined = String::new();
                for token in t.iter().take(end).skip(start) {
                    if !joined.is_empty() {
                        joined.push(' ');
                    }
                    joined.push_str(token.text);
                }
                Some(joined)
            }
        };
        Classification {
            intent: self.intent,
            tier: self.tier,
            rule: self.rule.to_owned(),
            matched,
        }
    }
}

fn classify_tokens(t: &[Token<'_>], ctx: &ReplyContext) -> Found {
    if t.is_empty() {
        return Found::new(Intent::Other, Tier::Clear, "other.no_words", Matched::None);
    }
    let note = match opt_out(Lexicon::Plain, t) {
        OptOutScan::Found(found) => return found,
        OptOutScan::Nothing(note) => note,
    };
    if let Some(found) = keyword_intent(t, Intent::Help, ctx.opted_out) {
        return found;
    }
    if let Some(found) = keyword_intent(t, Intent::OptIn, ctx.opted_out) {
        return found;
    }
    if let Some(grammar) = &ctx.grammar {
        if let Some(found) = grammar_code(t, grammar) {
            return found;
        }
        if let Some(found) = grammar_free_text(t, grammar) {
            return found;
        }
    }
    note.unwrap_or(Found::new(
        Intent::Other,
        Tier::Clear,
        "other.no_match",
        Matched::None,
    ))
}

/// The outcome of the opt-out pass: an opt-out, or nothing with an optional
/// note for the `Other` answer (a negated or other-sense keyword).
enum OptOutScan {
    Found(Found),
    Nothing(Option<Found>),
}

fn opt_out(lex: Lexicon, t: &[Token<'_>]) -> OptOutScan {
    // Exact: nothing but keywords.
    let mut first: Option<&'static Keyword> = None;
    let mut i = 0;
    let mut only_keywords = true;
    while i < t.len() {
        match opt_out_at(lex, t, i) {
            Some((k, len)) => {
                first.get_or_insert(k);
                i += len;
            }
            None => {
                only_keywords = false;
                break;
            }
        }
    }
    if only_keywords {
        if let Some(k) = first {
            return OptOutScan::Found(Found::new(
                Intent::OptOut,
                Tier::Exact,
                k.rule,
                Matched::Static(k.word),
            ));
        }
    }

    // Keywords inside a longer message.
    let mut doubtful = None;
    let mut note = None;
    let mut i = 0;
    while i < t.len() {
        let Some((k, len)) = opt_out_at(lex, t, i) else {
            // A keyword inside a word of a script written without spaces.
            if let Some((k, filler_only)) = unspaced_opt_out(text(t, i)) {
                if filler_only && only_filler_besides(lex, t, i, 1) {
                    return OptOutScan::Found(Found::new(
                        Intent::OptOut,
                        Tier::Clear,
                        k.rule,
                        Matched::Static(k.word),
                    ));
                }
                doubtful.get_or_insert(Found::new(
                    Intent::OptOut,
                    Tier::Doubtful,
                    "freetext.doubtful.keyword_in_sentence",
                    Matched::Static(k.word),
                ));
            }
            i += 1;
            continue;
        };
        let canonical = k.word;
        if !k.in_sentence {
            // A word with a common other sense counts only with filler.
            if only_filler_besides(lex, t, i, len) {
                return OptOutScan::Found(Found::new(
                    Intent::OptOut,
                    Tier::Clear,
                    k.rule,
                    Matched::Static(canonical),
                ));
            }
        } else if let Some(negator) = negated_by(t, i) {
            note.get_or_insert(Found::new(
                Intent::Other,
                Tier::Clear,
                "other.negated_keyword",
                Matched::Span(negator, i + len),
            ));
        } else if other_sense(t, i, len, canonical) {
            note.get_or_insert(Found::new(
                Intent::Other,
                Tier::Clear,
                "other.keyword_other_sense",
                Matched::Span(i, i + len + 1),
            ));
        } else if let Some(end) = texting_word_after(t, i + len) {
            return OptOutScan::Found(Found::new(
                Intent::OptOut,
                Tier::Clear,
                "freetext.revocation.stop_texting",
                Matched::Span(i, end + 1),
            ));
        } else if only_filler_besides(lex, t, i, len) {
            return OptOutScan::Found(Found::new(
                Intent::OptOut,
                Tier::Clear,
                k.rule,
                Matched::Static(canonical),
            ));
        } else {
            doubtful.get_or_insert(Found::new(
                Intent::OptOut,
                Tier::Doubtful,
                "freetext.doubtful.keyword_in_sentence",
                Matched::Static(canonical),
            ));
        }
        i += len;
    }

    // Free-text revocations without a keyword.
    for i in 0..t.len() {
        match revocation_phrase_at(t, i) {
            Some(found) if found.tier == Tier::Clear => return OptOutScan::Found(found),
            Some(found) => {
                doubtful.get_or_insert(found);
            }
            None => {}
        }
    }
    match doubtful {
        Some(found) => OptOutScan::Found(found),
        None => OptOutScan::Nothing(note),
    }
}

/// The negation among the two words before word `i`, in the same clause, if
/// there is one ("don't stop", "please don't ever stop"; not "never mind,
/// stop" or "never mind stop").
fn negated_by(t: &[Token<'_>], i: usize) -> Option<usize> {
    for back in 1..=2 {
        let j = i.checked_sub(back)?;
        // A clause break between word j and word i ends the look-back.
        if t.get(j + 1).is_some_and(|next| next.break_before) {
            return None;
        }
        let w = text(t, j);
        if is_negator(w) && !(w == "never" && text(t, j + 1) == "mind") {
            return Some(j);
        }
    }
    None
}

/// Whether the keyword at `i..i + len` is used in another sense: STOP as in
/// "stop by / in / at / over", "bus stop"; END as in "the end of", "end up".
fn other_sense(t: &[Token<'_>], i: usize, len: usize, canonical: &str) -> bool {
    let next = if joined(t, i + len - 1) {
        text(t, i + len)
    } else {
        ""
    };
    let prev = match i.checked_sub(1) {
        Some(p) if joined(t, p) => text(t, p),
        _ => "",
    };
    match canonical {
        "stop" => {
            let after = text(t, i + len + 1);
            matches!(
                next,
                "by" | "in" | "over" | "sign" | "signs" | "light" | "lights"
            ) || (next == "at" && after != "once")
                || matches!(
                    prev,
                    "bus"
                        | "pit"
                        | "next"
                        | "last"
                        | "first"
                        | "full"
                        | "one"
                        | "truck"
                        | "train"
                        | "rest"
                        | "non"
                )
        }
        // "I quit smoking", "quit my job": quitting something else.
        "quit" => {
            (next.len() > 4 && next.ends_with("ing") && !is_texting_word(next))
                || matches!(next, "job" | "work" | "school")
                || (matches!(next, "my" | "the") && matches!(text(t, i + len + 1), "job" | "work"))
        }
        "end" => {
            matches!(next, "of" | "up" | "at" | "date" | "time" | "result")
                || matches!(
                    prev,
                    "dead" | "deep" | "back" | "front" | "rear" | "high" | "low"
                )
        }
        _ => false,
    }
}

/// The index of a texting word among the three words after `from`, in the
/// same clause ("stop texting", "stop sending me these texts").
fn texting_word_after(t: &[Token<'_>], from: usize) -> Option<usize> {
    (from..from + 4)
        .take_while(|&j| j < t.len() && !t.get(j).is_some_and(|tok| tok.break_before))
        .find(|&j| is_texting_word(text(t, j)))
}

/// Whether every word outside `i..i + len` is filler, a texting word or
/// another keyword.
fn only_filler_besides(lex: Lexicon, t: &[Token<'_>], i: usize, len: usize) -> bool {
    t.iter().enumerate().all(|(j, token)| {
        (i..i + len).contains(&j)
            || is_filler(token.text)
            // "stop at once", "never mind, stop".
            || (token.text == "at" && text(t, j + 1) == "once")
            || (token.text == "never" && text(t, j + 1) == "mind")
            || (token.text == "mind" && j.checked_sub(1).is_some_and(|p| text(t, p) == "never"))
            || is_texting_word(token.text)
            || opt_out_at(lex, t, j).is_some()
            || matches!(token.text, "opt" | "out" | "no" | "it")
            // A preamble that asks for the keyword: "I want to
            // unsubscribe", "I asked you to stop", "I'd like to opt out".
            || (j < i && is_preamble(token.text))
    })
}

/// Words that, before a keyword, only ask for it.
fn is_preamble(w: &str) -> bool {
    matches!(
        w,
        "i" | "i'd"
            | "id"
            | "i'm"
            | "im"
            | "i've"
            | "ive"
            | "am"
            | "want"
            | "wanna"
            | "would"
            | "like"
            | "wish"
            | "need"
            | "to"
            | "asked"
            | "told"
            | "said"
            | "have"
            | "trying"
            | "going"
            | "do"
    )
}

/// A free-text revocation starting at word `i`.
fn revocation_phrase_at(t: &[Token<'_>], i: usize) -> Option<Found> {
    let w = text(t, i);
    let w1 = text(t, i + 1);
    let w2 = text(t, i + 2);
    let clear = |rule, end: usize| {
        Some(Found::new(
            Intent::OptOut,
            Tier::Clear,
            rule,
            Matched::Span(i, end),
        ))
    };
    let doubtful = |rule, end: usize| {
        Some(Found::new(
            Intent::OptOut,
            Tier::Doubtful,
            rule,
            Matched::Span(i, end),
        ))
    };
    match w {
        "don't" | "dont" => do_not(t, i, i + 1),
        "do" if w1 == "not" => do_not(t, i, i + 2),
        "never" if is_contact_verb(w1) => clear("freetext.revocation.do_not_text", i + 2),
        "no" => match w1 {
            // "I no longer consent", "no longer want these texts", "she no
            // longer has this number".
            "longer" => {
                if is_consent_word(w2) || matches!(w2, "agree" | "authorize") {
                    clear("freetext.revocation.no_longer_consent", i + 3)
                } else if matches!(w2, "has" | "have" | "owns" | "uses" | "use")
                    && (i + 3..i + 6).any(|j| matches!(text(t, j), "number" | "phone"))
                {
                    clear("freetext.revocation.wrong_number", i + 3)
                } else if matches!(w2, "want" | "wish" | "need" | "like" | "wanna") {
                    match texting_word_after(t, i + 3) {
                        Some(end) => clear("freetext.revocation.no_longer_want_texts", end + 1),
                        None => doubtful("freetext.doubtful.no_longer_want", i + 3),
                    }
                } else if w2 == "interested" {
                    doubtful("freetext.doubtful.not_interested", i + 3)
                } else {
                    None
                }
            }
            // "no thanks" with nothing else: may decline the texts or only
            // this appointment.
            "thanks" | "thank" | "thx" | "gracias" | "merci"
                if t.iter().skip(i + 2).all(|token| is_filler(token.text)) =>
            {
                doubtful("freetext.doubtful.no_thanks", i + 2)
            }
            // "no more", alone or about the texts.
            "more" if w2.is_empty() || is_texting_word(w2) || is_filler(w2) => {
                clear("freetext.revocation.no_more_texts", i + 2)
            }
            // Spanish "no más" ("no more").
            "mas" if w2.is_empty() || is_texting_word(w2) || is_filler(w2) => {
                clear("freetext.revocation.es_no_mas", i + 2)
            }
            "mas" => doubtful("freetext.doubtful.es_no_mas", i + 2),
            // "no me envíen / manden / escriban (más mensajes)".
            "me" if matches!(
                w2,
                "envien"
                    | "envies"
                    | "manden"
                    | "mandes"
                    | "escriban"
                    | "escribas"
                    | "contacten"
                    | "contactes"
                    | "molesten"
                    | "molestes"
            ) =>
            {
                clear("freetext.revocation.es_no_me_envien", i + 3)
            }
            "quiero" if matches!(w2, "mas" | "mensajes" | "textos" | "recibir" | "recibirlos") => {
                clear("freetext.revocation.es_no_quiero", i + 3)
            }
            _ => None,
        },
        "ya" if w1 == "no" => {
            if matches!(
                w2,
                "quiero" | "me" | "mas" | "mensajes" | "envien" | "manden" | "recibir"
            ) {
                clear("freetext.revocation.es_ya_no", i + 3)
            } else if w2.is_empty() {
                doubtful("freetext.doubtful.es_ya_no", i + 2)
            } else {
                None
            }
        }
        "dejen" | "deja" | "dejar" | "dejes" | "dejan"
            if w1 == "de"
                && matches!(
                    w2,
                    "enviar"
                        | "enviarme"
                        | "mandar"
                        | "mandarme"
                        | "escribir"
                        | "escribirme"
                        | "molestar"
                        | "molestarme"
                        | "contactar"
                        | "contactarme"
                ) =>
        {
            clear("freetext.revocation.es_dejen_de", i + 3)
        }
        "take" if matches!(w1, "me" | "my" | "us" | "this" | "our") => (i + 2..i + 5)
            .find(|&j| text(t, j) == "off")
            .and_then(|j| clear("freetext.revocation.take_me_off", j + 1)),
        "leave" if matches!(w1, "me" | "us") && w2 == "alone" => {
            clear("freetext.revocation.leave_me_alone", i + 3)
        }
        // "I withdraw my consent", "I'm revoking permission", "retiro mi
        // consentimiento".
        "withdraw" | "withdrawing" | "withdrawn" | "withdrew" | "retract" | "retracting"
        | "rescind" | "rescinding" | "revoking" | "retiro" | "revoco" | "retire" | "retirer"
            if consent_word_after(t, i + 1).is_some() =>
        {
            let end = consent_word_after(t, i + 1).unwrap_or(i);
            clear("freetext.revocation.withdraw_consent", end + 1)
        }
        // "Enough!", "enough already", "that's enough", "enough with the
        // texts": exasperation with nothing else said.
        "enough"
            if t.iter().enumerate().all(|(j, token)| {
                j == i
                    || is_filler(token.text)
                    || is_texting_word(token.text)
                    || matches!(
                        token.text,
                        "that's" | "thats" | "is" | "it" | "with" | "of" | "ok" | "seriously"
                    )
            }) =>
        {
            clear("freetext.revocation.enough", i + 1)
        }
        // "sick of these texts", "tired of your messages", "fed up with the
        // reminders", "done with these messages".
        "sick" | "tired" | "fed" | "done"
            if matches!(
                (w, w1),
                ("sick" | "tired", "of") | ("fed", "up") | ("done", "with")
            ) && joined(t, i) =>
        {
            texting_word_after(t, i + 2)
                .and_then(|end| clear("freetext.revocation.exasperation", end + 1))
        }
        // "I never signed up", "I didn't agree to this".
        "never" | "didn't" | "didnt" | "did"
            if matches!(
                w1,
                "signed" | "sign" | "agreed" | "agree" | "consented" | "asked"
            ) || (w == "did" && w1 == "not" && matches!(w2, "sign" | "agree" | "consent")) =>
        {
            doubtful("freetext.doubtful.never_agreed", i + 2)
        }
        // "Why do you keep texting me?": an objection, maybe a revocation.
        "keep" if is_texting_word(w1) => doubtful("freetext.doubtful.keep_texting", i + 2),
        // "This person doesn't live here": the number is someone else's.
        "live" | "lives"
            if w1 == "here"
                && (1..=2)
                    .any(|back| i.checked_sub(back).is_some_and(|p| is_negator(text(t, p)))) =>
        {
            clear("freetext.revocation.wrong_number", i + 2)
        }
        // Spanish "déjenme en paz", French "laissez-moi tranquille".
        "dejenme" | "dejame" | "dejeme" if w1 == "en" && w2 == "paz" => {
            clear("freetext.revocation.leave_me_alone", i + 3)
        }
        "laissez" | "laisse" | "laissez-moi" if w1 == "moi" && w2 == "tranquille" => {
            clear("freetext.revocation.leave_me_alone", i + 3)
        }
        // French and Spanish "plus de SMS" / "no más mensajes" (the latter
        // above), German "keine SMS mehr", Portuguese "não quero mais",
        // Italian "non voglio più".
        "plus" if w1 == "de" && is_texting_word(w2) => {
            clear("freetext.revocation.fr_plus_de_sms", i + 3)
        }
        "keine" if is_texting_word(w1) || matches!(w1, "nachrichten" | "mehr" | "werbung") => {
            clear("freetext.revocation.de_keine_sms", i + 2)
        }
        "nao" | "non"
            if matches!(
                w1,
                "quero"
                    | "mande"
                    | "mandem"
                    | "envie"
                    | "enviem"
                    | "voglio"
                    | "mandate"
                    | "inviate"
                    | "scrivete"
            ) && (i + 2..i + 5).any(|j| matches!(text(t, j), "mais" | "piu")) =>
        {
            clear("freetext.revocation.pt_it_no_more", i + 2)
        }
        "wrong"
            if matches!(
                w1,
                "number" | "num" | "person" | "phone" | "no" | "guy" | "girl" | "contact"
            ) =>
        {
            clear("freetext.revocation.wrong_number", i + 2)
        }
        "numero" if w1 == "equivocado" => clear("freetext.revocation.wrong_number", i + 2),
        "not" if w1 == "my" && matches!(w2, "number" | "phone") => {
            clear("freetext.revocation.wrong_number", i + 3)
        }
        "not" if w1 == "interested" => doubtful("freetext.doubtful.not_interested", i + 2),
        "opt" if matches!(w1, "me" | "us") && w2 == "out" => {
            clear("freetext.revocation.opt_me_out", i + 3)
        }
        "delete" | "lose" | "erase"
            if matches!(w1, "my" | "this" | "our")
                && matches!(w2, "number" | "info" | "contact" | "phone") =>
        {
            clear("freetext.revocation.delete_my_number", i + 3)
        }
        _ => None,
    }
}

/// After a negation at `neg` whose verb is at `verb`: "don't text me",
/// "do not contact me", "I don't want these messages".
fn do_not(t: &[Token<'_>], neg: usize, verb: usize) -> Option<Found> {
    let v = text(t, verb);
    if is_contact_verb(v) {
        return Some(Found::new(
            Intent::OptOut,
            Tier::Clear,
            "freetext.revocation.do_not_text",
            Matched::Span(neg, verb + 1),
        ));
    }
    if is_consent_word(v) || matches!(v, "agree" | "authorize" | "authorise") {
        return Some(Found::new(
            Intent::OptOut,
            Tier::Clear,
            "freetext.revocation.do_not_consent",
            Matched::Span(neg, verb + 1),
        ));
    }
    if matches!(v, "want" | "wanna" | "need") {
        // "I don't want to receive any more messages": the texting word
        // may come a few words on, in the same clause.
        let end = (verb + 1..verb + 7)
            .take_while(|&j| j < t.len() && !t.get(j).is_some_and(|tok| tok.break_before))
            .find(|&j| is_texting_word(text(t, j)));
        return end.map(|end| {
            Found::new(
                Intent::OptOut,
                Tier::Clear,
                "freetext.revocation.do_not_want_texts",
                Matched::Span(neg, end + 1),
            )
        });
    }
    None
}

/// Days and relative days, in English and Spanish.
fn is_day_word(w: &str) -> bool {
    matches!(
        w,
        "monday"
            | "tuesday"
            | "wednesday"
            | "thursday"
            | "friday"
            | "saturday"
            | "sunday"
            | "mon"
            | "tue"
            | "tues"
            | "wed"
            | "thu"
            | "thur"
            | "thurs"
            | "fri"
            | "tomorrow"
            | "tmrw"
            | "weekend"
            | "week"
            | "lunes"
            | "martes"
            | "miercoles"
            | "jueves"
            | "viernes"
            | "sabado"
            | "domingo"
            | "manana"
            | "semana"
    )
}

/// Words for consent itself, in the listed languages.
fn is_consent_word(w: &str) -> bool {
    matches!(
        w,
        "consent"
            | "consents"
            | "consenting"
            | "permission"
            | "permissions"
            | "authorization"
            | "authorisation"
            | "agreement"
            | "optin"
            | "consentimiento"
            | "autorizacion"
            | "permiso"
            | "consentement"
            | "autorisation"
            | "einwilligung"
            | "zustimmung"
            | "consenso"
            | "consentimento"
    )
}

/// The index of a consent word among the four words after `from`, in the
/// same clause ("withdraw *my* consent").
fn consent_word_after(t: &[Token<'_>], from: usize) -> Option<usize> {
    (from..from + 4)
        .take_while(|&j| j < t.len() && !t.get(j).is_some_and(|tok| tok.break_before))
        .find(|&j| is_consent_word(text(t, j)))
}

/// HELP or opt-in: only keywords is `Exact`, a keyword with filler `Clear`.
/// Opt-in words such as YES count only while the number is opted out.
fn keyword_intent(t: &[Token<'_>], intent: Intent, opted_out: bool) -> Option<Found> {
    let want = |k: &Keyword| k.intent == intent && (opted_out || !k.after_opt_out);
    let mut first: Option<(&'static str, usize, usize)> = None;
    let mut all_keywords = true;
    let mut all_filler = true;
    let mut i = 0;
    while i < t.len() {
        if let Some((k, len)) = keyword_at(t, i, want) {
            first.get_or_insert((k.rule, i, i + len));
            i += len;
            continue;
        }
        let word = text(t, i);
        let unspaced = if word.is_ascii() {
            None
        } else {
            KEYWORDS
                .iter()
                .find(|k| k.unspaced && want(k) && word.contains(k.word))
        };
        match unspaced {
            // A keyword inside a word written without spaces ("请帮助").
            Some(k) => {
                first.get_or_insert((k.rule, i, i + 1));
                all_keywords = false;
            }
            None => {
                all_keywords = false;
                all_filler &= is_filler(word) || is_texting_word(word);
            }
        }
        i += 1;
    }
    let (rule, start, end) = first?;
    let matched = Matched::Span(start, end);
    if all_keywords {
        Some(Found::new(intent, Tier::Exact, rule, matched))
    } else if all_filler {
        Some(Found::new(intent, Tier::Clear, rule, matched))
    } else {
        None
    }
}

/// Whether word `w` equals `code` once both are normalized.
fn code_matches(w: &str, code: &str) -> bool {
    let code = code.trim();
    if code.is_ascii() {
        w.eq_ignore_ascii_case(code)
    } else {
        normalize(code) == w
    }
}

/// A reply code of the grammar: only codes is `Exact`, a code with filler
/// `Clear`.
fn grammar_code(t: &[Token<'_>], grammar: &ReplyGrammar) -> Option<Found> {
    let lists = [
        (Intent::Confirm, "grammar.confirm", &grammar.confirm),
        (
            Intent::Reschedule,
            "grammar.reschedule",
            &grammar.reschedule,
        ),
    ];
    for (intent, rule, codes) in lists {
        let is_code = |w: &str| codes.iter().any(|code| code_matches(w, code));
        let Some(at) = t.iter().position(|token| is_code(token.text)) else {
            continue;
        };
        let matched = Matched::Span(at, at + 1);
        if t.iter().all(|token| is_code(token.text)) {
            return Some(Found::new(intent, Tier::Exact, rule, matched));
        }
        if t.iter()
            .enumerate()
            .all(|(j, token)| j == at || is_filler(token.text))
        {
            return Some(Found::new(intent, Tier::Clear, rule, matched));
        }
    }
    None
}

/// Free-text answers to the last prompt: a reschedule request, or a
/// confirmation (when not negated).
fn grammar_free_text(t: &[Token<'_>], grammar: &ReplyGrammar) -> Option<Found> {
    if !grammar.reschedule.is_empty() {
        for i in 0..t.len() {
            let w = text(t, i);
            let w1 = text(t, i + 1);
            let w2 = text(t, i + 2);
            let end = match w {
                "reschedule" | "rescheduling" | "reprogramar" | "reagendar" | "instead" => {
                    Some(i + 1)
                }
                // "I can't make it", "won't be able to come", "unable to
                // attend": the patient needs another time.
                "can't" | "cant" | "cannot" | "won't" | "wont" | "unable" | "able"
                    if matches!(w1, "make" | "come" | "attend" | "go" | "be" | "to")
                        && (w != "able"
                            || i.checked_sub(1).is_some_and(|p| is_negator(text(t, p))))
                        && (w1 != "be" || matches!(w2, "able" | "there"))
                        && (w1 != "to" || matches!(w2, "make" | "come" | "attend" | "go")) =>
                {
                    Some(i + 2)
                }
                // Spanish: "otro día", "otra fecha / hora", "cambiar la cita",
                // "no puedo ir / asistir / llegar / venir".
                "otro" | "otra" if matches!(w1, "dia" | "fecha" | "hora" | "horario") => {
                    Some(i + 2)
                }
                "cambiar" | "mover"
                    if matches!(w1, "cita" | "fecha" | "hora")
                        || (matches!(w1, "la" | "mi")
                            && matches!(w2, "cita" | "fecha" | "hora")) =>
                {
                    Some(i + 2 + usize::from(matches!(w1, "la" | "mi")))
                }
                "puedo" | "podre" | "podemos"
                    if i.checked_sub(1).is_some_and(|p| text(t, p) == "no")
                        && matches!(w1, "ir" | "asistir" | "llegar" | "venir") =>
                {
                    Some(i + 2)
                }
                "re" if w1 == "schedule" => Some(i + 2),
                "another" | "different" | "other" if matches!(w1, "time" | "day" | "date") => {
                    Some(i + 2)
                }
                "change" | "move"
                    if matches!(w1, "appointment" | "appt" | "time" | "date")
                        || (matches!(w1, "my" | "the")
                            && matches!(w2, "appointment" | "appt" | "time" | "date")) =>
                {
                    Some(i + 2 + usize::from(matches!(w1, "my" | "the")))
                }
                _ => None,
            };
            if let Some(end) = end {
                return Some(Found::new(
                    Intent::Reschedule,
                    Tier::Clear,
                    "freetext.reschedule",
                    Matched::Span(i, end),
                ));
            }
        }
        // Another day proposed: "can I come Thursday?", "how about next
        // week", "¿el jueves?" — a day word with a question or a proposal.
        if let Some(day) = t.iter().position(|token| is_day_word(token.text)) {
            let proposes = t.windows(2).any(|pair| {
                matches!(
                    (
                        pair.first().map_or("", |p| p.text),
                        pair.get(1).map_or("", |p| p.text)
                    ),
                    ("can" | "could" | "may", "i" | "we")
                        | ("how" | "what", "about")
                        | ("is" | "are", "there")
                        | ("do" | "would", "you")
                        | ("puedo" | "podria" | "podemos", _)
                        | ("que", "tal")
                )
            }) || t.iter().any(|token| {
                matches!(
                    token.text,
                    "available" | "possible" | "open" | "free" | "disponible"
                )
            });
            if proposes {
                return Some(Found::new(
                    Intent::Reschedule,
                    Tier::Clear,
                    "freetext.reschedule.other_day",
                    Matched::Span(day, day + 1),
                ));
            }
        }
    }
    if grammar.confirm.is_empty() || t.iter().any(|token| is_negator(token.text)) {
        return None;
    }
    for i in 0..t.len() {
        let w = text(t, i);
        let w1 = text(t, i + 1);
        let end = match w {
            "confirm" | "confirmed" | "confirming" | "confirmo" | "confirmado" | "confirmada"
            | "attending" | "asistire" => Some(i + 1),
            "be" if w1 == "there" => Some(i + 2),
            "see" if w1 == "you" => Some(i + 2),
            "sounds" if matches!(w1, "good" | "great" | "fine") => Some(i + 2),
            "got" if w1 == "it" => Some(i + 2),
            "will" if matches!(w1, "do" | "attend" | "come") => Some(i + 2),
            "de" if w1 == "acuerdo" => Some(i + 2),
            "nos" if w1 == "vemos" => Some(i + 2),
            "ahi" | "alli" | "alla" if w1 == "estare" => Some(i + 2),
            _ => None,
        };
        if let Some(end) = end {
            return Some(Found::new(
                Intent::Confirm,
                Tier::Clear,
                "freetext.confirm",
                Matched::Span(i, end),
            ));
        }
    }
    // A bare affirmative ("yes", "ok", "sure", "sí") with only filler.
    let affirmative = |w: &str| {
        matches!(
            w,
            "yes"
                | "y"
                | "yep"
                | "yeah"
                | "yup"
                | "ya"
                | "si"
                | "sure"
                | "ok"
                | "okay"
                | "okey"
                | "k"
                | "absolutely"
                | "definitely"
                | "claro"
                | "vale"
                | "dale"
                | "listo"
                | "perfecto"
                | "correcto"
                | "oui"
                | "sim"
                | "ja"
        )
    };
    let at = t.iter().position(|token| affirmative(token.text))?;
    t.iter()
        .all(|token| affirmative(token.text) || is_filler(token.text))
        .then_some(Found::new(
            Intent::Confirm,
            Tier::Clear,
            "freetext.confirm.affirmative",
            Matched::Span(at, at + 1),
        ))
}
