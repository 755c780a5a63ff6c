//! What deciding on a reply reads, read before anything is written.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use optline_config::ProgramConfig;
use optline_policy::classify::{classify, Classification, ReplyContext};
use optline_policy::consent::{standing, ConsentStanding};
use optline_ports::{ContactFacts, ContactId, Ledger, Partition, PortError, SendHistoryEntry};

use crate::{InboundSms, Replies};

/// How far back the text a reply answers may lie.
const REPLY_HORIZON_DAYS: i64 = 30;

/// Keeps the newer of two sends.
fn consider(
    latest: &mut Option<(ContactId, SendHistoryEntry)>,
    contact: &ContactId,
    entry: &SendHistoryEntry,
) {
    if latest.as_ref().is_none_or(|(_, l)| entry.at > l.at) {
        *latest = Some((contact.clone(), entry.clone()));
    }
}

/// The facts of one reply.
#[derive(Debug)]
pub(crate) struct ReplyFacts {
    /// Every contact sharing the number, sorted.
    pub(crate) contacts: Vec<ContactId>,
    /// Their decision facts (audit heads among them).
    pub(crate) facts: HashMap<ContactId, ContactFacts>,
    /// The number's own ledger.
    pub(crate) phone: Ledger,
    /// How the number stands for the program (all categories).
    pub(crate) standing: ConsentStanding,
    /// The text last sent to the number, and to whom.
    pub(crate) latest: Option<(ContactId, SendHistoryEntry)>,
    /// Whether that text carried a reply grammar.
    pub(crate) has_grammar: bool,
    /// What the reply asks for.
    pub(crate) classification: Classification,
}

impl ReplyFacts {
    pub(crate) async fn read(
        replies: Replies<'_>,
        sms: &InboundSms,
        program: &ProgramConfig,
        now: DateTime<Utc>,
    ) -> Result<Self, PortError> {
        let store = replies.store;
        let mut contacts = store.contacts_by_phone(&sms.from).await?;
        contacts.sort();
        contacts.dedup();
        let phone = store.ledger(&Partition::Phone(sms.from.clone())).await?;
        let facts = if contacts.is_empty() {
            HashMap::new()
        } else {
            store.contact_facts(&contacts, now).await?
        };
        let standing = standing(&phone.facts, &program.id, "*", now);
        let opted_out = matches!(standing, ConsentStanding::Revoked { .. });

        // The reply grammar is the one of the template version last sent to
        // this number; confirm and reschedule replies are recorded against
        // that send. The recent sends come with the facts; older ones (up
        // to 30 days) are looked up only when there are none.
        let mut latest: Option<(ContactId, SendHistoryEntry)> = None;
        for contact in &contacts {
            if let Some(entry) = facts.get(contact).and_then(|f| f.sends.first()) {
                consider(&mut latest, contact, entry);
            }
        }
        if latest.is_none() {
            for contact in &contacts {
                let since = now - chrono::Duration::days(REPLY_HORIZON_DAYS);
                if let Some(entry) = store.send_history(contact, since).await?.first() {
                    consider(&mut latest, contact, entry);
                }
            }
        }
        // The grammar of the version last sent, read from the library in
        // any state: a retired version's codes still mean what they meant.
        let pinned = latest
            .as_ref()
            .and_then(|(_, e)| e.template.as_deref())
            .and_then(|t| t.split_once('@'))
            .and_then(|(id, version)| Some((id.to_owned(), version.parse::<u32>().ok()?)));
        let grammar = match pinned {
            Some((id, version)) => store
                .template_version(&id, version)
                .await?
                .and_then(|t| t.version.grammar()),
            None => None,
        };
        let has_grammar = grammar.is_some();
        let classification = classify(&sms.body, &ReplyContext { grammar, opted_out });
        Ok(Self {
            contacts,
            facts,
            phone,
            standing,
            latest,
            has_grammar,
            classification,
        })
    }
}
