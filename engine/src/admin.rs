//! What the console's admin screen reads in one call, for admins only: the staff accounts
//! with their routing profiles, the SLA targets, the business hours, the holidays and the
//! retention periods. The changes go through the functions of the modules that own each table
//! ([`crate::staff`], [`crate::presence`], [`crate::roster`], [`crate::sla`],
//! [`crate::retention`]), each checking the role and writing its own audit row.

use serde::Serialize;
use sqlx::PgConnection;

use crate::presence::{self, StaffProfile};
use crate::retention::{self, Policy};
use crate::sla::{self, Calendar, Holiday, PriorityTargets};
use crate::staff::{self, Actor, StaffAccount, StaffError, StaffRole};

/// Why the admin view could not be read.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The viewer is not an admin.
    #[error(transparent)]
    Staff(#[from] StaffError),
    /// A profile could not be read.
    #[error(transparent)]
    Presence(#[from] presence::PresenceError),
    /// The retention periods could not be read.
    #[error(transparent)]
    Retention(#[from] retention::RetentionError),
    /// A database error.
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
}

/// A staff account with its routing profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StaffMember {
    /// The account: role, active, lock.
    pub account: StaffAccount,
    /// Languages, tier, capacity, on call.
    pub profile: StaffProfile,
}

/// Everything the admin screen shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AdminView {
    /// Every staff account, disabled ones too (admins first).
    pub staff: Vec<StaffMember>,
    /// SLA targets per priority, most urgent first.
    pub targets: Vec<PriorityTargets>,
    /// The business-hours calendar.
    pub calendar: Calendar,
    /// The holidays in date order.
    pub holidays: Vec<Holiday>,
    /// The retention periods.
    pub retention: Vec<Policy>,
}

/// The admin view, for admins only (anyone else is refused, naming the rule).
pub async fn view(conn: &mut PgConnection, viewer: &Actor) -> Result<AdminView, AdminError> {
    staff::require(viewer, StaffRole::Admin, "the admin screen")?;
    let accounts = staff::list(conn).await?;
    let mut members = Vec::with_capacity(accounts.len());
    for account in accounts {
        let profile = presence::profile(conn, account.id).await?;
        members.push(StaffMember { account, profile });
    }
    Ok(AdminView {
        staff: members,
        targets: sla::targets(conn).await?,
        calendar: sla::calendar(conn).await?,
        holidays: sla::holidays(conn).await?,
        retention: retention::policies(conn).await?,
    })
}
