//! The reply grammar: the last template's codes and the free-text
//! confirmations and reschedule requests it makes meaningful.

use super::*;

/// Whether word `w` equals `code` once both are normalized.
pub(super) fn code_matches(w: &str, code: &str) -> bool {
    let code = code.trim();
    if code.is_ascii() {
        w.eq_ignore_ascii_case(code)
    } else {
        normalize(code) == w
    }
}

/// A reply code of the grammar: only codes is `Exact`, a code with filler
/// `Clear`.
pub(super) fn grammar_code(t: &[Token<'_>], grammar: &ReplyGrammar) -> Option<Found> {
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
pub(super) fn grammar_free_text(t: &[Token<'_>], grammar: &ReplyGrammar) -> Option<Found> {
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

/// Days and relative days, in English and Spanish.
pub(super) fn is_day_word(w: &str) -> bool {
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
