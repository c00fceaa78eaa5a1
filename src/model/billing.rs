//! Billing rows as deliveries and their templates see them.

use serde::Serialize;

/// A customer as deliveries and templates see it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Customer {
    pub id: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub country: Option<String>,
    pub custom_data: serde_json::Value,
    pub created_at: Option<String>,
}

/// An invoice as deliveries and templates see it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Invoice {
    pub id: String,
    pub number: Option<String>,
    pub status: Option<String>,
    pub amount_cents: Option<i64>,
    pub currency: Option<String>,
    pub due_date: Option<String>,
    pub created_at: Option<String>,
}
