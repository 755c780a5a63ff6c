//! The contact directory: profiles and the phone index.

use async_trait::async_trait;
use optline_policy::phone::E164;
use optline_ports::{
    Commit, Committed, Committer, Contact, ContactDirectory, ContactId, PersonIdentifier,
    PortError, Write,
};

use aws_sdk_dynamodb::types::AttributeValue;

use super::item::{attr, from_item, key, unavailable};
use super::DynamoStore;

#[async_trait]
impl ContactDirectory for DynamoStore {
    async fn create_contact(&self, contact: &Contact) -> Result<(), PortError> {
        let mut commit = Commit::default();
        commit.push(Write::CreateContact(contact.clone()));
        match self.commit(commit).await? {
            Committed::Done(_) => Ok(()),
            Committed::Duplicate(_) | Committed::Conflict(_) => Err(PortError::Conflict(
                "create contact: the id exists".to_owned(),
            )),
        }
    }

    async fn contact(&self, id: &ContactId) -> Result<Option<Contact>, PortError> {
        match self.get(key::contact(id), "PROFILE").await? {
            Some(item) => Ok(Some(from_item(&item)?)),
            None => Ok(None),
        }
    }

    async fn contact_by_identifier(
        &self,
        identifier: &PersonIdentifier,
    ) -> Result<Option<ContactId>, PortError> {
        match self.get(key::identifier(identifier), "CONTACT").await? {
            Some(item) => match attr(&item, "contact_id") {
                Some(id) => Ok(Some(ContactId::parse(id)?)),
                None => Err(PortError::Corrupt(
                    "identifier index without contact id".to_owned(),
                )),
            },
            None => Ok(None),
        }
    }

    async fn contact_ids_page(
        &self,
        after: Option<String>,
    ) -> Result<(Vec<ContactId>, Option<String>), PortError> {
        // A scan of the profiles: one page of the table (up to 1 MB read),
        // the contacts in it, and the key to continue from (`pk` and `sk`,
        // opaque to the caller).
        let start = after.and_then(|cursor| {
            let (pk, sk) = cursor.split_once('\n')?;
            Some(std::collections::HashMap::from([
                ("pk".to_owned(), AttributeValue::S(pk.to_owned())),
                ("sk".to_owned(), AttributeValue::S(sk.to_owned())),
            ]))
        });
        let page = self
            .client
            .scan()
            .table_name(&self.table)
            .filter_expression("sk = :profile AND begins_with(pk, :contact)")
            .expression_attribute_values(":profile", AttributeValue::S("PROFILE".to_owned()))
            .expression_attribute_values(":contact", AttributeValue::S("CONTACT#".to_owned()))
            .projection_expression("pk")
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| unavailable("scan contacts", e))?;
        let ids = page
            .items()
            .iter()
            .filter_map(|item| match item.get("pk") {
                Some(AttributeValue::S(pk)) => pk.strip_prefix("CONTACT#").map(ContactId::parse),
                _ => None,
            })
            .collect::<Result<Vec<_>, _>>()?;
        let next = page
            .last_evaluated_key()
            .and_then(|k| match (k.get("pk"), k.get("sk")) {
                (Some(AttributeValue::S(pk)), Some(AttributeValue::S(sk))) => {
                    Some(format!("{pk}\n{sk}"))
                }
                _ => None,
            });
        Ok((ids, next))
    }

    async fn contacts_by_phone(&self, phone: &E164) -> Result<Vec<ContactId>, PortError> {
        let items = self.query_prefix(&key::phone(phone), "CONTACT#").await?;
        items
            .iter()
            .map(|item| match attr(item, "contact_id") {
                Some(id) => ContactId::parse(id),
                None => Err(PortError::Corrupt(
                    "phone index without contact id".to_owned(),
                )),
            })
            .collect()
    }
}
