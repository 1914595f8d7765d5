//! The reference lookups (conversation modes and statuses, ticket categories, priorities and
//! statuses) with their names in the three languages, so every screen labels codes in its
//! reader's language.

use std::collections::HashMap;

use sqlx::PgConnection;

use crate::lang::Lang;

/// Which lookup table a code belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LookupKind {
    /// `conversation_modes`.
    ConversationMode,
    /// `conversation_statuses`.
    ConversationStatus,
    /// `ticket_categories`.
    TicketCategory,
    /// `ticket_priorities`.
    TicketPriority,
    /// `ticket_statuses`.
    TicketStatus,
}

/// The names of every lookup code, in Arabic, French and English.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Labels {
    names: HashMap<(LookupKind, String), [String; 3]>,
    order: HashMap<LookupKind, Vec<String>>,
}

impl Labels {
    /// The name of `code` in `lang`; the code itself when the table has no such code (a label
    /// must never hide data).
    pub fn label<'a>(&'a self, kind: LookupKind, code: &'a str, lang: Lang) -> &'a str {
        match self.names.get(&(kind, code.to_string())) {
            Some(names) => &names[lang_index(lang)],
            None => code,
        }
    }

    /// The codes of one table in their display order.
    pub fn codes(&self, kind: LookupKind) -> &[String] {
        self.order.get(&kind).map(Vec::as_slice).unwrap_or_default()
    }

    /// Adds one code (used by readers and by tests that build labels by hand).
    pub fn insert(&mut self, kind: LookupKind, code: &str, names: [&str; 3]) {
        self.order.entry(kind).or_default().push(code.to_string());
        self.names
            .insert((kind, code.to_string()), names.map(str::to_string));
    }
}

fn lang_index(lang: Lang) -> usize {
    match lang {
        Lang::Ar => 0,
        Lang::Fr => 1,
        Lang::En => 2,
    }
}

/// Reads every lookup table.
pub async fn labels(conn: &mut PgConnection) -> sqlx::Result<Labels> {
    let rows: Vec<(String, String, String, String, String)> = sqlx::query_as(
        "SELECT * FROM ( \
           SELECT 'mode' AS kind, code, name_ar, name_fr, name_en, 0 AS ord FROM conversation_modes \
           UNION ALL SELECT 'cstatus', code, name_ar, name_fr, name_en, 0 FROM conversation_statuses \
           UNION ALL SELECT 'category', code, name_ar, name_fr, name_en, sort_order FROM ticket_categories \
           UNION ALL SELECT 'priority', code, name_ar, name_fr, name_en, level FROM ticket_priorities \
           UNION ALL SELECT 'tstatus', code, name_ar, name_fr, name_en, 0 FROM ticket_statuses \
         ) l ORDER BY kind, ord, code",
    )
    .fetch_all(conn)
    .await
    .map(|rows: Vec<(String, String, String, String, String, i32)>| {
        rows.into_iter()
            .map(|(k, c, ar, fr, en, _)| (k, c, ar, fr, en))
            .collect()
    })?;
    let mut labels = Labels::default();
    for (kind, code, ar, fr, en) in rows {
        let kind = match kind.as_str() {
            "mode" => LookupKind::ConversationMode,
            "cstatus" => LookupKind::ConversationStatus,
            "category" => LookupKind::TicketCategory,
            "priority" => LookupKind::TicketPriority,
            _ => LookupKind::TicketStatus,
        };
        labels.insert(kind, &code, [&ar, &fr, &en]);
    }
    Ok(labels)
}
