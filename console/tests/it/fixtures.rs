//! Fixed data for snapshot tests: every screen drawn from the same known state at a fixed time.

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use serde_json::json;
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};
use uuid::Uuid;

use amal_console::app::App;
use amal_console::data::{DataEvent, Request, Session, TicketView};
use amal_console::theme::{ColorDepth, Theme};
use amal_engine::audit::AuditRecord;
use amal_engine::conversations::{ConversationSummary, DecisionRecord, Message, TranscriptEntry};
use amal_engine::decision::answer::Citation;
use amal_engine::knowledge::store::DocumentSummary;
use amal_engine::lang::Lang;
use amal_engine::lookups::{Labels, LookupKind};
use amal_engine::sla::{SlaClock, SlaState, SlaStateText};
use amal_engine::staff::{Actor, StaffPreferences, StaffRole};
use amal_engine::stats::{
    ActivityDay, AgentWorkload, BreachDay, ComplianceDay, CrisisDay, DecisionDay, Statistics,
    TimeSummary,
};
use amal_engine::tickets::{Alerts, Comment, Ticket, TicketDetail};

/// The instant every snapshot is drawn at.
pub fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap()
}

fn id(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

pub fn labels() -> Labels {
    let mut l = Labels::default();
    l.insert(
        LookupKind::ConversationStatus,
        "active",
        ["نشطة", "Active", "Active"],
    );
    l.insert(
        LookupKind::ConversationStatus,
        "escalated",
        ["محولة", "Transmise", "Escalated"],
    );
    l.insert(
        LookupKind::ConversationMode,
        "AUTO",
        ["تلقائي", "Automatique", "Automatic"],
    );
    l.insert(
        LookupKind::TicketPriority,
        "low",
        ["منخفضة", "Basse", "Low"],
    );
    l.insert(
        LookupKind::TicketPriority,
        "medium",
        ["متوسطة", "Moyenne", "Medium"],
    );
    l.insert(
        LookupKind::TicketPriority,
        "high",
        ["عالية", "Haute", "High"],
    );
    l.insert(
        LookupKind::TicketPriority,
        "urgent",
        ["عاجلة", "Urgente", "Urgent"],
    );
    l.insert(
        LookupKind::TicketCategory,
        "crisis",
        ["أزمة", "Crise", "Crisis"],
    );
    l.insert(
        LookupKind::TicketCategory,
        "addiction",
        ["إدمان", "Addiction", "Addiction"],
    );
    l.insert(
        LookupKind::TicketStatus,
        "open",
        ["مفتوحة", "Ouvert", "Open"],
    );
    l.insert(
        LookupKind::TicketStatus,
        "in_progress",
        ["قيد المعالجة", "En cours", "In progress"],
    );
    l.insert(
        LookupKind::TicketStatus,
        "pending",
        ["في الانتظار", "En attente", "Pending"],
    );
    l
}

pub fn session(role: StaffRole) -> Session {
    Session {
        actor: Actor {
            id: id(201),
            email: "agent.demo@amal.example".into(),
            name: "Nadia (agent)".into(),
            role,
        },
        preferences: StaffPreferences {
            theme: None,
            lang: Lang::En,
        },
        labels: labels(),
    }
}

/// A signed-in console (as `role`) with every screen's data delivered, and the worker's inbox.
pub fn app(role: StaffRole) -> (App, UnboundedReceiver<Request>) {
    let (tx, rx) = unbounded_channel();
    let mut app = App::new(
        tx,
        Theme::default_theme(ColorDepth::TrueColor),
        None,
        Some("agent.demo@amal.example".into()),
        now(),
    );
    app.on_data(DataEvent::SignedIn(Ok(Box::new(session(role)))));
    app.on_data(DataEvent::Conversations(conversations()));
    app.on_data(DataEvent::Transcript(id(1), transcript()));
    app.on_data(DataEvent::Queue(tickets(), now()));
    app.on_data(DataEvent::Statistics(Box::new(statistics())));
    app.on_data(DataEvent::Documents(documents()));
    app.on_data(DataEvent::Audit(audit()));
    app.on_data(DataEvent::Alerts(alerts()));
    // The sign-in's banner for waiting crisis tickets is put away: snapshots show the screens.
    app.alert = None;
    (app, rx)
}

/// One crisis ticket nobody holds (TKT-2026-000012), one breach.
pub fn alerts() -> Alerts {
    Alerts {
        unassigned_crisis: 1,
        breached: 1,
        newest_unassigned_crisis: Some("TKT-2026-000012".into()),
    }
}

pub fn conversations() -> Vec<ConversationSummary> {
    let row = |n: u128,
               name: &str,
               lang: &str,
               status: &str,
               minutes: i64,
               ticket: Option<(&str, &str)>| {
        ConversationSummary {
            id: id(n),
            user_name: name.into(),
            title: None,
            mode: "AUTO".into(),
            status: status.into(),
            language: Some(lang.into()),
            message_count: 4,
            last_activity_at: now() - Duration::minutes(minutes),
            escalated_at: ticket.map(|_| now() - Duration::minutes(minutes)),
            last_message: Some("…".into()),
            last_role: Some("assistant".into()),
            ticket_number: ticket.map(|t| t.0.to_string()),
            ticket_priority: ticket.map(|t| t.1.to_string()),
        }
    };
    vec![
        row(
            1,
            "أمينة",
            "ar",
            "escalated",
            2,
            Some(("TKT-2026-000012", "urgent")),
        ),
        row(2, "Yacine", "fr", "active", 9, None),
        row(
            3,
            "Sarah",
            "en",
            "escalated",
            75,
            Some(("TKT-2026-000011", "medium")),
        ),
        row(4, "Karim", "ar", "active", 60 * 26, None),
    ]
}

fn message(
    n: u128,
    role: &str,
    content: &str,
    minutes: i64,
    metadata: serde_json::Value,
) -> Message {
    Message {
        id: id(n),
        conversation_id: id(1),
        role: role.into(),
        content: content.into(),
        metadata,
        tokens_used: None,
        processing_time_ms: None,
        client_message_id: None,
        created_at: now() - Duration::minutes(minutes),
    }
}

pub fn transcript() -> Vec<TranscriptEntry> {
    vec![
        TranscriptEntry {
            message: message(11, "user", "كيفاش نعرف إذا راني نشرب بزاف", 6, json!({})),
            decision: None,
            citations: vec![],
        },
        TranscriptEntry {
            message: message(
                12,
                "assistant",
                "Voici ce que dit notre guide sur l'alcool : réduire progressivement.",
                6,
                json!({}),
            ),
            decision: Some(DecisionRecord {
                id: id(21),
                message_id: Some(id(11)),
                decision: "rag".into(),
                reason_code: Some("rag_confident".into()),
                reason_ar: None,
                reason_fr: None,
                reason_en: Some("The knowledge base answers this with confidence".into()),
                confidence: 0.87,
                evidence: json!({}),
                model_used: None,
                created_at: now() - Duration::minutes(6),
            }),
            citations: vec![Citation {
                document_id: id(31),
                title: "Alcohol: understanding your drinking".into(),
                source: None,
                chunk_ids: vec![],
            }],
        },
        TranscriptEntry {
            message: message(13, "user", "I can't go on anymore", 2, json!({})),
            decision: None,
            citations: vec![],
        },
        TranscriptEntry {
            message: message(14, "staff", "We are here with you.", 1, json!({})),
            decision: None,
            citations: vec![],
        },
    ]
}

fn clock(
    fr_left: Option<i64>,
    fr_target: i64,
    res_left: Option<i64>,
    res_target: i64,
    fr_state: SlaState,
    paused: bool,
) -> SlaClock {
    let res_state = SlaState::Ok;
    SlaClock {
        first_response_due_at: Some(now()),
        first_response_target_seconds: Some(fr_target),
        first_response_remaining_seconds: fr_left,
        first_response_state: SlaStateText(fr_state),
        resolution_due_at: Some(now()),
        resolution_target_seconds: Some(res_target),
        resolution_remaining_seconds: res_left,
        resolution_state: SlaStateText(res_state),
        sla_state: SlaStateText(fr_state.max(res_state)),
        sla_paused: paused,
    }
}

pub fn ticket(
    n: u32,
    priority: &str,
    status: &str,
    holder: Option<&str>,
    subject: &str,
    sla: SlaClock,
) -> Ticket {
    Ticket {
        id: id(u128::from(n) + 1000),
        ticket_number: format!("TKT-2026-{n:06}"),
        subject: subject.into(),
        category: if priority == "urgent" {
            "crisis".into()
        } else {
            "addiction".into()
        },
        priority: priority.into(),
        status: status.into(),
        assigned_to: holder.map(|_| "agent.demo@amal.example".into()),
        assigned_to_name: holder.map(str::to_string),
        assigned_to_id: holder.map(|_| id(201)),
        escalation_tier: "T1".into(),
        language: Some("ar".into()),
        user_id: id(101),
        conversation_id: Some(id(1)),
        created_at: now() - Duration::minutes(20),
        updated_at: now() - Duration::minutes(5),
        first_response_at: None,
        resolved_at: None,
        closed_at: None,
        sla,
    }
}

pub fn tickets() -> Vec<Ticket> {
    vec![
        ticket(
            12,
            "urgent",
            "open",
            None,
            "أريد أن أنهي حياتي",
            clock(
                Some(-190),
                900,
                Some(13_000),
                14_400,
                SlaState::Breached,
                false,
            ),
        ),
        ticket(
            9,
            "high",
            "in_progress",
            Some("Nadia (agent)"),
            "Mon frère et les jeux d'argent",
            clock(
                Some(600),
                3_600,
                Some(60_000),
                86_400,
                SlaState::Warning,
                false,
            ),
        ),
        ticket(
            11,
            "medium",
            "open",
            None,
            "Sleep and anxiety after stopping cannabis",
            clock(
                Some(9_000),
                14_400,
                Some(250_000),
                259_200,
                SlaState::Ok,
                false,
            ),
        ),
        ticket(
            7,
            "low",
            "pending",
            Some("Nadia (agent)"),
            "Suivi : sommeil",
            clock(
                Some(70_000),
                86_400,
                Some(500_000),
                604_800,
                SlaState::Ok,
                true,
            ),
        ),
    ]
}

pub fn ticket_view() -> TicketView {
    let comment = |n: u128, internal: bool, text: &str, minutes: i64| Comment {
        id: id(n),
        ticket_id: id(1012),
        author_email: "agent.demo@amal.example".into(),
        author_name: "Nadia (agent)".into(),
        content: text.into(),
        is_internal: internal,
        message_id: None,
        created_at: now() - Duration::minutes(minutes),
        edited_at: None,
        deleted_at: None,
    };
    TicketView {
        detail: TicketDetail {
            ticket: ticket(
                12,
                "urgent",
                "in_progress",
                Some("Nadia (agent)"),
                "أريد أن أنهي حياتي",
                clock(
                    Some(-190),
                    900,
                    Some(13_000),
                    14_400,
                    SlaState::Breached,
                    false,
                ),
            ),
            description: Some("Crisis gate: suicidal ideation".into()),
            resolution_notes: None,
            resolved_by: None,
            comments: vec![
                comment(41, false, "We are here with you.", 1),
                comment(42, true, "Called back; family informed.", 0),
            ],
            escalations: vec![],
        },
        transcript: transcript(),
    }
}

pub fn statistics() -> Statistics {
    let day = |d: u32| NaiveDate::from_ymd_opt(2026, 11, d).unwrap();
    let mut decisions = Vec::new();
    let mut activity = Vec::new();
    for d in 16..=22u32 {
        decisions.push(DecisionDay {
            date: day(d),
            decision: "rag".into(),
            count: i64::from(d % 5 + 3),
            avg_confidence: Some(0.8),
            out_of_scope: 0,
        });
        decisions.push(DecisionDay {
            date: day(d),
            decision: "support".into(),
            count: i64::from(d % 3 + 1),
            avg_confidence: Some(0.9),
            out_of_scope: 0,
        });
        activity.push(ActivityDay {
            date: day(d),
            conversations: i64::from(d % 4 + 2),
            messages: i64::from(d % 7 * 3 + 5),
        });
    }
    Statistics {
        generated_at: now(),
        window_days: 7,
        queue: vec![],
        open_tickets: 4,
        first_response: TimeSummary {
            tickets: 10,
            avg_seconds: Some(600.0),
            p90_seconds: Some(1_500.0),
        },
        resolution: TimeSummary {
            tickets: 6,
            avg_seconds: Some(30_000.0),
            p90_seconds: Some(80_000.0),
        },
        sla_compliance: vec![
            ComplianceDay {
                date: day(21),
                target: "first_response".into(),
                met: 9,
                breached: 1,
                running: 2,
                compliance: Some(0.9),
            },
            ComplianceDay {
                date: day(21),
                target: "resolution".into(),
                met: 5,
                breached: 2,
                running: 3,
                compliance: Some(0.71),
            },
        ],
        sla_breaches: vec![
            BreachDay {
                date: day(20),
                target: "first_response".into(),
                breaches: 1,
            },
            BreachDay {
                date: day(21),
                target: "resolution".into(),
                breaches: 2,
            },
        ],
        times: vec![],
        workload: vec![AgentWorkload {
            email: "agent.demo@amal.example".into(),
            name: "Nadia (agent)".into(),
            staff_role: Some("agent".into()),
            open_tickets: 2,
            in_progress: 1,
            pending: 1,
            breached_open: 1,
            crisis_open: 0,
            next_due_at: None,
        }],
        decisions,
        activity,
        crisis: vec![CrisisDay {
            date: day(22),
            tickets: 1,
            answered: 1,
            first_response_breached: 1,
            avg_first_response_seconds: Some(1_000.0),
            p90_first_response_seconds: Some(1_000.0),
            max_first_response_seconds: Some(1_000.0),
        }],
        routing: Default::default(),
    }
}

pub fn documents() -> Vec<DocumentSummary> {
    let doc = |n: u128, title: &str, lang: &str, status: &str| DocumentSummary {
        id: id(n),
        title: title.into(),
        source: None,
        lang: lang.into(),
        category: None,
        review_status: status.into(),
        chunk_count: 5,
        pii_redactions: 0,
        created_at: now(),
    };
    vec![
        doc(51, "Alcohol: understanding your drinking", "en", "approved"),
        doc(52, "Le sommeil après l'arrêt du cannabis", "fr", "pending"),
        doc(53, "القمار: كيف تتوقف", "ar", "rejected"),
    ]
}

pub fn audit() -> Vec<AuditRecord> {
    vec![
        AuditRecord {
            id: id(61),
            created_at: now() - Duration::minutes(1),
            actor_email: Some("agent.demo@amal.example".into()),
            action: "ticket.take".into(),
            resource_type: Some("support_ticket".into()),
            resource_id: Some(id(1012)),
            details: json!({"status": "open"}),
            target: Some("ticket TKT-2026-000012".into()),
            ..Default::default()
        },
        AuditRecord {
            id: id(62),
            created_at: now() - Duration::minutes(30),
            actor_email: None,
            action: "sla.breach".into(),
            resource_type: Some("support_ticket".into()),
            resource_id: Some(id(1012)),
            details: json!({"target": "first_response"}),
            ..Default::default()
        },
    ]
}
