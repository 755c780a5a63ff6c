//! Consent coverage per category: of every contact, how many have consent
//! in force for the category now (their own ledger and their number's,
//! folded by the policy crate as a send decision folds them).
//!
//! Coverage is a census, not a flow: it reads every contact's decision
//! facts (a scan of the profiles, then batched reads of the ledgers), so
//! it is computed on request (`optline-ops report --coverage`,
//! `/console/report?coverage=1`), not on every page view.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use optline_policy::consent::{standing, ConsentStanding};
use optline_ports::{PortError, Store};
use serde::Serialize;

/// Contacts read per batch of decision facts.
const BATCH: usize = 100;

/// One category's standing across the contacts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct CategoryCoverage {
    /// Consent in force.
    pub covered: u64,
    /// Revoked (an opt-out is the latest word).
    pub revoked: u64,
    /// A grant that has lapsed.
    pub lapsed: u64,
    /// Nothing recorded.
    pub none: u64,
}

impl CategoryCoverage {
    /// covered ÷ contacts (`None` with no contacts).
    pub fn rate(&self) -> Option<f64> {
        let all = self.covered + self.revoked + self.lapsed + self.none;
        (all > 0).then(|| self.covered as f64 / all as f64)
    }
}

/// The census.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Coverage {
    /// When it was taken.
    pub at: Option<DateTime<Utc>>,
    /// Contacts counted.
    pub contacts: u64,
    /// Per category.
    pub by_category: BTreeMap<String, CategoryCoverage>,
}

/// The consent categories the template library sends in.
pub async fn categories(store: &dyn Store) -> Result<Vec<String>, PortError> {
    let mut found = BTreeSet::new();
    for id in store.template_ids().await? {
        for version in store.template_versions(&id).await? {
            found.insert(version.version.category.clone());
        }
    }
    Ok(found.into_iter().collect())
}

/// Takes the census at `now` over `categories`, each contact under its
/// own program (only `program`'s contacts, when one is named).
pub async fn coverage(
    store: &dyn Store,
    categories: &[String],
    program: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Coverage, PortError> {
    let mut census = Coverage {
        at: Some(now),
        contacts: 0,
        by_category: categories
            .iter()
            .map(|c| (c.clone(), CategoryCoverage::default()))
            .collect(),
    };
    let mut cursor = None;
    loop {
        let (ids, next) = store.contact_ids_page(cursor).await?;
        for chunk in ids.chunks(BATCH) {
            let facts = store.contact_facts(chunk, now).await?;
            for f in facts.values() {
                if program.is_some_and(|p| p != f.contact.program) {
                    continue;
                }
                census.contacts += 1;
                for (category, tally) in &mut census.by_category {
                    match standing(&f.consent, &f.contact.program, category, now) {
                        ConsentStanding::Granted { .. } => tally.covered += 1,
                        ConsentStanding::Revoked { .. } => tally.revoked += 1,
                        ConsentStanding::Lapsed { .. } => tally.lapsed += 1,
                        ConsentStanding::None => tally.none += 1,
                    }
                }
            }
        }
        match next {
            Some(n) => cursor = Some(n),
            None => break,
        }
    }
    Ok(census)
}
