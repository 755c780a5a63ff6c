//! The contact directory: profiles and the phone index.

use async_trait::async_trait;
use optline_policy::phone::E164;
use optline_ports::{
    Commit, Committed, Committer, Contact, ContactDirectory, ContactId, PersonIdentifier,
    PortError, Write,
};

use super::item::{attr, from_item, key};
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
