//! Typed ids: an account's id cannot be passed where a request's is expected. Each is the
//! random text the store keeps; `Deref<Target = str>` lets it be read as that text.

macro_rules! text_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// The id as stored.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl From<String> for $name {
            fn from(text: String) -> Self {
                Self(text)
            }
        }

        impl From<&str> for $name {
            fn from(text: &str) -> Self {
                Self(text.to_owned())
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl PartialEq<$name> for String {
            fn eq(&self, other: &$name) -> bool {
                *self == other.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    };
}

text_id!(
    /// An account.
    UserId
);
text_id!(
    /// A login or signing request (a ConsentID transaction).
    TxnId
);
text_id!(
    /// A ConsentID device.
    DeviceId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_reads_as_its_text_and_compares_only_with_its_own_kind() {
        let user = UserId::from("u-1");
        assert_eq!(user.as_str(), "u-1");
        assert_eq!(&*user, "u-1");
        assert_eq!(user.to_string(), "u-1");
        assert!(user == *"u-1");
        assert!(user == "u-1");
        assert_ne!(user, UserId::from("u-2"));
    }
}
