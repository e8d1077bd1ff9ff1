//! Events: the collections a client subscribes to and the
//! `collection_update` notices it gets.
//!
//! Methods do not send events. The store tells the API every committed
//! change, whoever made it (see [`crate::Api::on_event`]), and the API
//! turns each into the events of the collections it touches.

use serde_json::Value;

/// The event collections, one per kind of object whose changes are told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Collection {
    /// `auth.twofactor`: the entry as `auth.twofactor.config` shows it
    /// (its secret masked), whenever its settings or root's secret change.
    TwoFactor,
    /// `user`: an account's `user.query` row, whenever its secret,
    /// recovery codes or lock-out change.
    User,
}

impl Collection {
    /// Every collection.
    pub const ALL: [Self; 2] = [Self::TwoFactor, Self::User];

    /// The collection's name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Self::TwoFactor => "auth.twofactor",
            Self::User => "user",
        }
    }
}

/// What `core.subscribe` subscribes to: one collection, or `*` for all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
pub enum Subscription {
    #[serde(rename = "auth.twofactor")]
    TwoFactor,
    #[serde(rename = "user")]
    User,
    #[serde(rename = "*")]
    All,
}

impl Subscription {
    /// The names `core.subscribe` takes: every collection's, and `*`.
    pub const NAMES: &'static [&'static str] = &["auth.twofactor", "user", "*"];

    /// Whether this subscription hears `collection`.
    pub fn covers(self, collection: Collection) -> bool {
        match self {
            Self::All => true,
            Self::TwoFactor => collection == Collection::TwoFactor,
            Self::User => collection == Collection::User,
        }
    }
}

impl crate::typed::Described for Subscription {
    fn schema() -> crate::schema::Schema {
        crate::schema::Schema::Choice(Self::NAMES)
    }
}

/// A change that subscribers hear about (`collection_update`).
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub collection: Collection,
    /// `changed`, `added`, `removed`.
    pub msg: &'static str,
    pub id: Value,
    pub fields: Value,
}

impl Event {
    /// The `collection_update` notification's params.
    pub fn to_params(&self) -> Value {
        serde_json::json!({
            "msg": self.msg,
            "collection": self.collection.name(),
            "id": self.id,
            "fields": self.fields,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `core.subscribe` takes exactly the collections' names and `*`,
    /// each meaning what it names.
    #[test]
    fn subscription_names_are_the_collections_and_star() {
        let mut named: Vec<&str> = Collection::ALL.iter().map(|c| c.name()).collect();
        named.push("*");
        assert_eq!(Subscription::NAMES, named.as_slice());
        for name in Subscription::NAMES {
            let s: Subscription =
                serde_json::from_value(Value::from(*name)).expect("a subscription name");
            for c in Collection::ALL {
                assert_eq!(s.covers(c), *name == "*" || *name == c.name(), "{name}");
            }
        }
        assert!(serde_json::from_value::<Subscription>(Value::from("users")).is_err());
    }
}
