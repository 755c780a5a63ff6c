//! The template library: immutable versions and their review lifecycle.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use optline_policy::template::review::Lifecycle;
use optline_ports::{PortError, StoredTemplate, TemplateStore};

use super::item::{
    is_conditional, key, s, stored_template, to_json, unavailable, TEMPLATE_CATALOG_PK,
};
use super::DynamoStore;

#[async_trait]
impl TemplateStore for DynamoStore {
    async fn create_template_version(&self, template: &StoredTemplate) -> Result<bool, PortError> {
        let id = template.version.id.as_str();
        // The catalog entry first: harmless if the version write then loses.
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(TEMPLATE_CATALOG_PK))
            .item("sk", s(format!("T#{id}")))
            .item("kind", s("template"))
            .send()
            .await
            .map_err(|e| unavailable("put template catalog entry", e))?;
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(key::template(id)))
            .item("sk", s(key::template_version(template.version.version)))
            .item("kind", s("template_version"))
            .item("content", s(to_json(&template.version)?))
            .item("data", s(to_json(&template.lifecycle)?))
            .item("state", s(template.lifecycle.state.as_str()))
            .item(
                "revision",
                AttributeValue::N(template.lifecycle.revision.to_string()),
            )
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if is_conditional(&e) => Ok(false),
            Err(e) => Err(unavailable("put template version", e)),
        }
    }

    async fn template_version(
        &self,
        id: &str,
        version: u32,
    ) -> Result<Option<StoredTemplate>, PortError> {
        match self
            .get(key::template(id), &key::template_version(version))
            .await?
        {
            Some(item) => Ok(Some(stored_template(&item)?)),
            None => Ok(None),
        }
    }

    async fn template_versions(&self, id: &str) -> Result<Vec<StoredTemplate>, PortError> {
        let items = self.query_prefix(&key::template(id), "V#").await?;
        items.iter().map(stored_template).collect()
    }

    async fn template_ids(&self) -> Result<Vec<String>, PortError> {
        let items = self.query_prefix(TEMPLATE_CATALOG_PK, "T#").await?;
        Ok(items
            .iter()
            .filter_map(|item| match item.get("sk") {
                Some(AttributeValue::S(sk)) => sk.strip_prefix("T#").map(str::to_owned),
                _ => None,
            })
            .collect())
    }

    async fn update_template_lifecycle(
        &self,
        id: &str,
        version: u32,
        expected_revision: u32,
        lifecycle: &Lifecycle,
    ) -> Result<bool, PortError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(key::template(id)))
            .key("sk", s(key::template_version(version)))
            .update_expression("SET #data = :data, #state = :state, revision = :next")
            .condition_expression("attribute_exists(pk) AND revision = :expected")
            .expression_attribute_names("#data", "data")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":data", s(to_json(lifecycle)?))
            .expression_attribute_values(":state", s(lifecycle.state.as_str()))
            .expression_attribute_values(":next", AttributeValue::N(lifecycle.revision.to_string()))
            .expression_attribute_values(
                ":expected",
                AttributeValue::N(expected_revision.to_string()),
            )
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if is_conditional(&e) => Ok(false),
            Err(e) => Err(unavailable("update template lifecycle", e)),
        }
    }
}
