//! Web Push subscriptions of ConsentID devices (RFC 8030): one per device, read when a request
//! for the device's user is created, replaced when the device registers again, deleted when
//! the device asks or the push service says the subscription is gone.

use std::future::Future;

use domain::records::PushSubscriptionRecord;
use domain::{DeviceId, UnixTime, UserId};

use crate::db::{query, Row};
use crate::{Error, Store, Tx};

const COLUMNS: &str =
    "SELECT p.device_id, p.endpoint, p.p256dh, p.auth, p.created_at FROM push_subscriptions p";

fn from_row(row: &Row) -> Result<PushSubscriptionRecord, Error> {
    Ok(PushSubscriptionRecord {
        device_id: row.try_get(0)?,
        endpoint: row.try_get(1)?,
        p256dh: row.try_get(2)?,
        auth: row.try_get(3)?,
        created_at: UnixTime(row.try_get(4)?),
    })
}

/// Web Push subscriptions, read outside a transaction.
pub trait PushQueries {
    /// The subscriptions of an account's active devices.
    fn push_subscriptions_of(
        &self,
        user_id: &UserId,
    ) -> impl Future<Output = Result<Vec<PushSubscriptionRecord>, Error>> + Send;

    /// A device's subscription.
    fn push_subscription(
        &self,
        device_id: &DeviceId,
    ) -> impl Future<Output = Result<Option<PushSubscriptionRecord>, Error>> + Send;
}

impl PushQueries for Store {
    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn push_subscriptions_of(
        &self,
        user_id: &UserId,
    ) -> Result<Vec<PushSubscriptionRecord>, Error> {
        let rows = query(&format!(
            "{COLUMNS} JOIN devices d ON d.id = p.device_id \
             WHERE d.user_id = $1 AND d.state = 'active' ORDER BY p.device_id"
        ))
        .bind(user_id.to_owned())
        .fetch_all(self.db())
        .await?;
        rows.iter().map(from_row).collect()
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn push_subscription(
        &self,
        device_id: &DeviceId,
    ) -> Result<Option<PushSubscriptionRecord>, Error> {
        let row = query(&format!("{COLUMNS} WHERE p.device_id = $1"))
            .bind(device_id.to_owned())
            .fetch_optional(self.db())
            .await?;
        row.map(|r| from_row(&r)).transpose()
    }
}

/// Web Push subscriptions of ConsentID devices, inside a use case's transaction.
pub trait PushStore {
    /// Stores a device's subscription, replacing the one it had.
    fn replace_push_subscription(
        &mut self,
        subscription: &PushSubscriptionRecord,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// Deletes a device's subscription; with `endpoint`, only if it is still that one (a push
    /// service's "gone" must not delete a newer registration). False if nothing was deleted.
    fn delete_push_subscription(
        &mut self,
        device_id: &DeviceId,
        endpoint: Option<&str>,
    ) -> impl Future<Output = Result<bool, Error>> + Send;
}

impl PushStore for Tx {
    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn replace_push_subscription(
        &mut self,
        subscription: &PushSubscriptionRecord,
    ) -> Result<(), Error> {
        query("DELETE FROM push_subscriptions WHERE device_id = $1")
            .bind(subscription.device_id.clone())
            .execute(self.conn()?)
            .await?;
        query(
            "INSERT INTO push_subscriptions (device_id, endpoint, p256dh, auth, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(subscription.device_id.clone())
        .bind(subscription.endpoint.clone())
        .bind(subscription.p256dh.clone())
        .bind(subscription.auth.clone())
        .bind(subscription.created_at.0)
        .execute(self.conn()?)
        .await?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", target = "store", skip_all)]
    async fn delete_push_subscription(
        &mut self,
        device_id: &DeviceId,
        endpoint: Option<&str>,
    ) -> Result<bool, Error> {
        let done = match endpoint {
            Some(endpoint) => {
                query("DELETE FROM push_subscriptions WHERE device_id = $1 AND endpoint = $2")
                    .bind(device_id.to_owned())
                    .bind(endpoint.to_owned())
                    .execute(self.conn()?)
                    .await?
            }
            None => {
                query("DELETE FROM push_subscriptions WHERE device_id = $1")
                    .bind(device_id.to_owned())
                    .execute(self.conn()?)
                    .await?
            }
        };
        Ok(done.rows_affected() > 0)
    }
}
