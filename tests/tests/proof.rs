//! Proof that holds in a dispute: evidence inside the chain, a keyed
//! chain, anchors signed with KMS and kept write-once in S3, and signed
//! proof bundles anyone with the public key verifies.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests fail loudly"
)]

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Duration, TimeZone, Utc};
use optline_audit::{AnchorCheck, ChainVerdict};
use optline_ports::{
    chain_hash, content_sha256, sha256_hex, AnchorStore, AuditRecord, AuditTrail, ConsentLedger,
    ContactId, EventId, Partition, Signer, TemplateStore,
};
use optline_tests::{body_json, Harness};
use serde_json::json;

fn noon() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 7, 17, 0, 0).unwrap()
}

const DISCLOSURE: &str =
    "I agree to receive appointment texts from Riverside Clinic. Reply STOP to opt out.";

/// A contact with a grant and one text sent to it.
async fn sent(h: &Harness, id: &str, phone: &str) -> ContactId {
    let created = optline_consent_api::handle(
        h.api_request(
            "POST",
            "/contacts",
            Some(json!({"id": id, "phone": phone, "time_zone": "America/New_York"})),
        ),
        &h.consent_api(),
        noon() - Duration::days(20),
    )
    .await;
    assert_eq!(created.status(), 201);
    let granted = optline_consent_api::handle(
        h.api_request(
            "POST",
            &format!("/contacts/{id}/consent"),
            Some(
                json!({"action": "grant", "categories": ["appointments"], "channel": "web_form",
                        "event_id": format!("grant-{id}"),
                        "disclosure_text": DISCLOSURE}),
            ),
        ),
        &h.consent_api(),
        noon() - Duration::days(20),
    )
    .await;
    assert_eq!(granted.status(), 201, "{}", body_json(&granted));
    let step = h.seed_step(id, phone, &format!("{id}-step"), noon()).await;
    let outcome = optline_dispatch::dispatch_step(&step, &h.dispatch(), noon())
        .await
        .unwrap();
    assert!(
        matches!(outcome, optline_dispatch::Outcome::Sent(_)),
        "{outcome:?}"
    );
    ContactId::parse(id).unwrap()
}

fn anchors(h: &Harness) -> optline_aws::S3Anchors {
    optline_aws::S3Anchors::new(h.s3.clone(), h.resources.anchor_bucket.clone())
}

fn signer(h: &Harness) -> optline_aws::KmsSigner {
    optline_aws::KmsSigner::new(h.kms.clone(), h.resources.signing_key.clone())
}

async fn run_anchor(h: &Harness, at: DateTime<Utc>) {
    let clients = h.clients_as("AuditAnchorFunction");
    let deps = optline_audit_anchor::Deps {
        store: optline_aws::DynamoStore::new(clients.dynamodb, h.resources.table_name.clone()),
        signer: optline_aws::KmsSigner::new(clients.kms, h.resources.signing_key.clone()),
        anchors: optline_aws::S3Anchors::new(clients.s3, h.resources.anchor_bucket.clone()),
        retention: Duration::days(1),
    };
    let report = optline_audit_anchor::handle(&deps, at).await.unwrap();
    assert!(report.count >= 1);
}

async fn verdict(h: &Harness, contact: &ContactId) -> ChainVerdict {
    let chain = h.store.audit_chain(contact).await.unwrap();
    let anchor = anchors(h)
        .latest_anchor()
        .await
        .unwrap()
        .map(|b| optline_audit::parse_anchor(&b).unwrap());
    let public_key = signer(h).public_key().await.unwrap();
    optline_audit::verify_against_anchor(
        contact.as_str(),
        &chain,
        h.store.audit_key(),
        anchor.as_ref(),
        &public_key,
    )
}

fn record_item(
    h: &Harness,
    record: &AuditRecord,
) -> aws_sdk_dynamodb::operation::put_item::builders::PutItemFluentBuilder {
    h.dynamodb
        .put_item()
        .table_name(&h.resources.table_name)
        .item(
            "pk",
            AttributeValue::S(format!("AUDIT#{}", record.content.contact_id)),
        )
        .item("sk", AttributeValue::S(format!("REC#{:012}", record.seq)))
        .item("kind", AttributeValue::S("audit".to_owned()))
        .item(
            "data",
            AttributeValue::S(serde_json::to_string(record).unwrap()),
        )
}

#[tokio::test]
async fn a_decision_record_holds_the_hashes_of_everything_it_rests_on() {
    let h = Harness::new("proof-evidence").await;
    let contact = sent(&h, "pr-1", "+12125550601").await;
    let chain = h.store.audit_chain(&contact).await.unwrap();
    let send = chain.iter().find(|r| r.content.action == "send").unwrap();
    let event = h
        .store
        .consent_event(
            &Partition::Contact(contact.clone()),
            &EventId::parse("grant-pr-1").unwrap(),
        )
        .await
        .unwrap()
        .unwrap();
    let template = h
        .store
        .template_version("appointment_reminder", 1)
        .await
        .unwrap()
        .unwrap();
    let text = h
        .sns_sms()
        .await
        .into_iter()
        .rfind(|t| t.phone_number == "+12125550601")
        .unwrap()
        .message;
    let evidence = &send.content.evidence;
    assert_eq!(evidence["consent_event"], event.body_sha256());
    assert_eq!(evidence["disclosure"], sha256_hex(DISCLOSURE.as_bytes()));
    assert_eq!(evidence["template"], content_sha256(&template.version));
    assert_eq!(evidence["rendered"], sha256_hex(text.as_bytes()));
    // The grant's own record carries the same event and text hashes.
    let grant = chain.iter().find(|r| r.content.action == "grant").unwrap();
    assert_eq!(grant.content.evidence["consent_event"], event.body_sha256());
    // The links are keyed: without the key the chain does not verify.
    assert!(send.key_id.is_some());
    assert!(optline_ports::verify_chain(&chain, None).is_err());
    assert!(optline_ports::verify_chain(&chain, h.store.audit_key()).is_ok());
}

#[tokio::test]
async fn truncation_and_rewrite_of_a_chain_are_detected_against_the_signed_anchor() {
    let h = Harness::new("proof-anchor").await;
    let cut = sent(&h, "pr-cut", "+12125550602").await;
    let edited = sent(&h, "pr-edit", "+12125550603").await;
    let rewritten = sent(&h, "pr-rewrite", "+12125550604").await;
    run_anchor(&h, noon() + Duration::minutes(5)).await;
    for contact in [&cut, &edited, &rewritten] {
        let v = verdict(&h, contact).await;
        assert!(v.holds(), "{contact}: {v:?}");
        assert!(matches!(v.anchor, AnchorCheck::Holds { .. }), "{v:?}");
    }
    // The anchor is write-once: S3 refuses to delete it.
    let listed =
        h.s3.list_object_versions()
            .bucket(&h.resources.anchor_bucket)
            .send()
            .await
            .unwrap();
    let version = &listed.versions()[0];
    let deleted =
        h.s3.delete_object()
            .bucket(&h.resources.anchor_bucket)
            .key(version.key().unwrap())
            .version_id(version.version_id().unwrap())
            .send()
            .await;
    assert!(
        deleted.is_err(),
        "an anchor under Object Lock cannot be deleted"
    );

    // Truncation: the newest record is deleted (its chain still links).
    let chain = h.store.audit_chain(&cut).await.unwrap();
    let last = chain.last().unwrap();
    h.dynamodb
        .delete_item()
        .table_name(&h.resources.table_name)
        .key("pk", AttributeValue::S(format!("AUDIT#{cut}")))
        .key("sk", AttributeValue::S(format!("REC#{:012}", last.seq)))
        .send()
        .await
        .unwrap();
    let v = verdict(&h, &cut).await;
    assert!(v.broken.is_none(), "what is left still links");
    assert_eq!(
        v.anchor,
        AnchorCheck::Truncated {
            anchored: last.seq,
            found: last.seq - 1
        }
    );
    assert!(!v.holds());

    // An edit without the key: the record's own hash no longer verifies.
    let chain = h.store.audit_chain(&edited).await.unwrap();
    let mut tampered = chain.last().unwrap().clone();
    tampered.content.legal_basis = Some("fcc_healthcare_exempt".to_owned());
    record_item(&h, &tampered).send().await.unwrap();
    let v = verdict(&h, &edited).await;
    assert!(v.broken.is_some(), "{v:?}");
    assert!(!v.holds());

    // A rewrite by someone who holds the key: every hash recomputed, so the
    // links verify, but the record at the anchored head is not the
    // anchored one.
    let chain = h.store.audit_chain(&rewritten).await.unwrap();
    let key = h.store.audit_key().cloned();
    let mut prev = optline_ports::GENESIS_HASH.to_owned();
    for record in &chain {
        let mut record = record.clone();
        if record.content.action == "send" {
            record.content.detail = Some("rewritten after the fact".to_owned());
        }
        record.prev_hash = prev.clone();
        record.hash = chain_hash(&prev, &record.content, key.as_ref());
        prev = record.hash.clone();
        record_item(&h, &record).send().await.unwrap();
    }
    let v = verdict(&h, &rewritten).await;
    assert!(v.broken.is_none(), "the rewrite is self-consistent: {v:?}");
    assert!(matches!(v.anchor, AnchorCheck::Rewritten { .. }), "{v:?}");
    assert!(!v.holds());
}

#[tokio::test]
async fn a_signed_proof_bundle_verifies_offline_and_any_tampering_fails() {
    let h = Harness::new("proof-bundle").await;
    let contact = sent(&h, "pr-bundle", "+12125550605").await;
    run_anchor(&h, noon() + Duration::minutes(5)).await;
    let consent = optline_consent::Consent {
        store: h.store.as_ref(),
        default_program: "clinic",
    };
    let (signed, content) = optline_audit::proof::export(
        consent,
        &anchors(&h),
        &signer(&h),
        contact.as_str(),
        noon() + Duration::hours(1),
    )
    .await
    .unwrap();
    assert_eq!(content.consent_events.len(), 1);
    assert_eq!(content.consent_events[0]["disclosure_text"], DISCLOSURE);
    assert!(!content.decisions.is_empty());
    assert!(content.anchor.is_some());
    // The public key, as PEM, is all a verifier needs.
    let pem = optline_audit::public_key_pem(&signer(&h).public_key().await.unwrap()).unwrap();
    let der = optline_audit::public_key_der(&pem).unwrap();
    let bundle = serde_json::to_vec(&signed).unwrap();
    let verdict = optline_audit::proof::verify(&bundle, &der).unwrap();
    assert!(verdict.holds(), "{verdict:?}");
    assert_eq!(verdict.anchored, Some(true));

    // A changed disclosure text: the signature no longer verifies.
    let mut forged = signed.clone();
    forged.content = forged
        .content
        .replace("Riverside Clinic", "Riverside Clinics");
    assert_ne!(forged.content, signed.content);
    let verdict =
        optline_audit::proof::verify(&serde_json::to_vec(&forged).unwrap(), &der).unwrap();
    assert!(!verdict.signature && !verdict.holds());
    // Another key's signature: refused.
    let other = p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).unwrap();
    let other_der = {
        use p256::pkcs8::EncodePublicKey;
        other
            .verifying_key()
            .to_public_key_der()
            .unwrap()
            .as_bytes()
            .to_vec()
    };
    assert!(!optline_audit::proof::verify(&bundle, &other_der)
        .unwrap()
        .holds());
    // The printable page shows the exact text and the decisions.
    let page = optline_audit::proof::render_html(&content, &signed);
    assert!(page.contains(DISCLOSURE));
    assert!(page.contains("appointment_reminder@1"));
}

#[tokio::test]
async fn a_consent_event_id_reused_for_different_content_is_refused_and_writes_nothing() {
    let h = Harness::new("proof-reuse").await;
    let created = optline_consent_api::handle(
        h.api_request(
            "POST",
            "/contacts",
            Some(json!({"id": "pr-reuse", "phone": "+12125550606"})),
        ),
        &h.consent_api(),
        noon(),
    )
    .await;
    assert_eq!(created.status(), 201);
    let post = |body: serde_json::Value| {
        let h = h.clone();
        async move {
            optline_consent_api::handle(
                h.api_request("POST", "/contacts/pr-reuse/consent", Some(body)),
                &h.consent_api(),
                noon(),
            )
            .await
        }
    };
    let grant = json!({"action": "grant", "categories": ["appointments"], "channel": "web_form",
                       "event_id": "evt-reuse-1", "disclosure_text": DISCLOSURE});
    assert_eq!(post(grant.clone()).await.status(), 201);
    // The same event again: a retry, answered 200, nothing new.
    let again = post(grant).await;
    assert_eq!(again.status(), 200);
    assert_eq!(body_json(&again)["created"], false);
    // A revocation under the grant's id: refused, and the revocation is
    // not silently dropped as a "retry".
    let before = h.table_items().await.len();
    let revoke =
        post(json!({"action": "revoke", "channel": "staff", "event_id": "evt-reuse-1"})).await;
    assert_eq!(revoke.status(), 409, "{}", body_json(&revoke));
    assert!(body_json(&revoke)["error"]
        .as_str()
        .unwrap()
        .contains("different content"));
    assert_eq!(h.table_items().await.len(), before, "nothing written");
    let events = h
        .store
        .consent_events(
            &ContactId::parse("pr-reuse").unwrap(),
            &optline_policy::phone::E164::parse("+12125550606").unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
}

#[tokio::test]
async fn a_contact_whose_id_spells_a_template_keeps_its_own_chain_apart_from_the_templates_trail() {
    let h = Harness::new("proof-subjects").await;
    // Before: the template's trail was `template:<id>`, which a contact id
    // could spell, sharing its chain and its state item.
    let contact = sent(&h, "template:appointment_reminder", "+12125550731").await;
    let trail = ContactId::template_trail("appointment_reminder").unwrap();
    assert_ne!(contact, trail);
    let key = h.store.audit_key();
    let ours = h.store.audit_chain(&contact).await.unwrap();
    let theirs = h.store.audit_chain(&trail).await.unwrap();
    assert!(!ours.is_empty() && !theirs.is_empty());
    assert!(ours.iter().all(|r| r.content.contact_id == contact));
    assert!(ours.iter().all(|r| r.content.kind != "template"));
    assert!(theirs.iter().all(|r| r.content.kind == "template"));
    assert!(optline_ports::verify_chain(&ours, key).is_ok());
    assert!(optline_ports::verify_chain(&theirs, key).is_ok());
    assert_eq!(
        ours[0].seq, 1,
        "the contact's chain starts at its own genesis"
    );

    // The trail's form is nothing a request can name.
    assert!(ContactId::parse("template/appointment_reminder").is_err());
    let refused = optline_consent_api::handle(
        h.api_request(
            "POST",
            "/contacts",
            Some(json!({"id": "template/appointment_reminder", "phone": "+12125550732"})),
        ),
        &h.consent_api(),
        noon(),
    )
    .await;
    assert_eq!(refused.status(), 400, "{}", body_json(&refused));
    // Stored subjects read back as what they are.
    assert_eq!(
        ContactId::subject("template/appointment_reminder").unwrap(),
        trail
    );
    assert_eq!(trail.trail_template(), Some("appointment_reminder"));
    assert_eq!(contact.trail_template(), None);
}
