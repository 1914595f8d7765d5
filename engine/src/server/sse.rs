//! Live conversations: one Server-Sent Events stream per conversation.
//!
//! Each instance keeps one `LISTEN amal_events` connection ([`EventHub`]) and fans the notices
//! out to its streams. A stream re-reads the conversation's **messages** after the last one it
//! sent (the person's, the assistant's and staff public replies: internal ticket comments are
//! not messages, so they cannot appear) and sends each as an `event: message` whose id is its
//! cursor; a client reconnecting with `Last-Event-ID` resumes after it. Processing states of
//! turns run by this instance come as `event: state`.
//!
//! A stream outlives the request that authenticated it, so it re-checks its session before
//! every delivery and every [`SESSION_RECHECK`]: once the person signs out, the session
//! expires or the account is deleted, disabled or made a staff account, it sends `event: end`
//! and closes, and nothing more of the conversation goes out on it.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use serde::Serialize;
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::{broadcast, mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use uuid::Uuid;

use crate::conversations::{Cursor, person};
use crate::db::person::Scope;
use crate::events::{CHANNEL, ChangeKind, ChangeNotice};
use crate::users;

/// What the hub fans out.
#[derive(Debug, Clone)]
pub enum HubEvent {
    /// A notice from the database (any instance's commit).
    Notice(ChangeNotice),
    /// A turn's processing state on this instance.
    State(TurnState),
    /// The listen connection was re-established: notices may have been missed.
    Resync,
}

/// A turn's processing state, as sent in `event: state`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TurnState {
    /// The conversation.
    pub conversation_id: Uuid,
    /// processing, answered or failed.
    pub state: &'static str,
    /// The client's key of the message being answered, if it gave one.
    pub client_message_id: Option<String>,
}

/// Live streams one session may hold open at once (a person with the page open on a phone
/// and a computer, and a reconnect or two).
pub const STREAMS_PER_SESSION: usize = 4;
/// Live streams one instance holds open at once.
pub const STREAMS_OVERALL: usize = 2_000;

/// The per-instance fan-out of database notices and turn states, and the count of its streams.
#[derive(Debug, Clone)]
pub struct EventHub {
    tx: broadcast::Sender<HubEvent>,
    streams: Arc<Mutex<StreamCount>>,
}

#[derive(Debug, Default)]
struct StreamCount {
    overall: usize,
    per_session: HashMap<Uuid, usize>,
}

/// Why a stream was not opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamRefusal {
    /// The session holds [`STREAMS_PER_SESSION`] streams already.
    Session,
    /// The instance holds [`STREAMS_OVERALL`] streams already.
    Overall,
}

/// A stream's place in the count, given back when dropped (the stream ended).
#[derive(Debug)]
pub struct StreamSlot {
    streams: Arc<Mutex<StreamCount>>,
    session_id: Uuid,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut count = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        count.overall = count.overall.saturating_sub(1);
        if let Some(n) = count.per_session.get_mut(&self.session_id) {
            *n -= 1;
            if *n == 0 {
                count.per_session.remove(&self.session_id);
            }
        }
    }
}

impl Default for EventHub {
    fn default() -> Self {
        Self::new()
    }
}

impl EventHub {
    /// A hub with no listener yet.
    pub fn new() -> Self {
        EventHub {
            tx: broadcast::channel(1024).0,
            streams: Arc::default(),
        }
    }

    /// A place for one more stream of `session_id`, within the caps.
    pub fn claim(&self, session_id: Uuid) -> Result<StreamSlot, StreamRefusal> {
        let mut count = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        if count.overall >= STREAMS_OVERALL {
            return Err(StreamRefusal::Overall);
        }
        let mine = count.per_session.entry(session_id).or_insert(0);
        if *mine >= STREAMS_PER_SESSION {
            return Err(StreamRefusal::Session);
        }
        *mine += 1;
        count.overall += 1;
        Ok(StreamSlot {
            streams: self.streams.clone(),
            session_id,
        })
    }

    /// Publishes a turn state to this instance's streams.
    pub fn publish_state(&self, state: TurnState) {
        let _ = self.tx.send(HubEvent::State(state));
    }

    /// Listens on [`CHANNEL`] until `shutdown`, reconnecting after failures.
    pub fn spawn_listener(
        &self,
        pool: PgPool,
        mut shutdown: watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let tx = self.tx.clone();
        tokio::spawn(async move {
            loop {
                let listener = async {
                    let mut l = PgListener::connect_with(&pool).await?;
                    l.listen(CHANNEL).await?;
                    Ok::<_, sqlx::Error>(l)
                };
                let mut listener = match listener.await {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::warn!("live events: cannot listen: {e}");
                        tokio::select! {
                            _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                            _ = crate::workers::stopped(&mut shutdown) => return,
                        }
                    }
                };
                let _ = tx.send(HubEvent::Resync);
                loop {
                    tokio::select! {
                        n = listener.recv() => match n {
                            Ok(n) => {
                                if let Ok(notice) = ChangeNotice::parse(n.payload()) {
                                    let _ = tx.send(HubEvent::Notice(notice));
                                }
                            }
                            Err(e) => {
                                tracing::warn!("live events: listen connection lost: {e}");
                                break;
                            }
                        },
                        _ = crate::workers::stopped(&mut shutdown) => return,
                    }
                }
            }
        })
    }

    fn subscribe(&self) -> broadcast::Receiver<HubEvent> {
        self.tx.subscribe()
    }
}

/// Most messages sent per catch-up query.
const BATCH: i64 = 100;

/// How often an idle stream re-checks its session: the longest it stays open after the
/// session ends (deliveries are checked before they go out, whatever this is).
pub const SESSION_RECHECK: Duration = Duration::from_secs(10);

/// Whether the stream's session has ended; if so, tells the client (`event: end`) so that the
/// caller closes the stream. A database error keeps the stream (the next check decides), since
/// dropping live streams on a passing error would be worse.
async fn session_ended(
    pool: &PgPool,
    session_id: Uuid,
    tx: &mpsc::Sender<Result<Event, Infallible>>,
) -> bool {
    let live = match pool.acquire().await {
        Ok(mut conn) => {
            let now = chrono::Utc::now();
            let live = users::session_is_live(&mut conn, session_id, now).await;
            if matches!(live, Ok(true)) {
                // The person is connected: staff replies reach them here, not by e-mail.
                if let Err(e) = crate::sessions::mark_live(&mut conn, session_id, now).await {
                    tracing::warn!("live events: cannot mark the session connected: {e}");
                }
            }
            live
        }
        Err(e) => Err(e.into()),
    };
    let live = live.unwrap_or_else(|e| {
        tracing::warn!("live events: cannot check the session: {e}");
        true
    });
    if !live
        && let Ok(event) = Event::default()
            .event("end")
            .json_data(serde_json::json!({ "reason": "session_ended" }))
    {
        let _ = tx.send(Ok(event)).await;
    }
    !live
}

/// The stream of one conversation for its owner (checked by the caller): the messages after
/// `after` (`None`: from the first), then live ones. The caller passes the newest message at
/// connection time when the client gives no resume point.
pub fn stream(
    state: &super::AppState,
    slot: StreamSlot,
    user: &crate::users::EndUser,
    conversation_id: Uuid,
    after: Option<Cursor>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>> + use<>> {
    let (pool, hub) = (state.pool.clone(), state.hub.clone());
    let mut shutdown = state.shutdown.subscribe();
    let (user_id, session_id) = (user.id, user.session_id);
    let (tx, rx) = mpsc::channel::<Result<Event, Infallible>>(64);
    // Subscribe before the first read, so nothing committed in between is missed.
    let mut events = hub.subscribe();
    tokio::spawn(async move {
        let _slot = slot;
        let mut cursor = after;
        // Catch up at once: anything committed since the cursor was read is sent.
        let mut pending = true;
        let mut recheck = tokio::time::interval_at(
            tokio::time::Instant::now() + SESSION_RECHECK,
            SESSION_RECHECK,
        );
        recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The request that opened the stream has just authenticated the session; it is
        // connected from now on (see `session_ended`, which renews this on every check).
        if let Ok(mut conn) = pool.acquire().await
            && let Err(e) =
                crate::sessions::mark_live(&mut conn, session_id, chrono::Utc::now()).await
        {
            tracing::warn!("live events: cannot mark the session connected: {e}");
        }
        let mut first = true;
        loop {
            if pending {
                pending = false;
                if !std::mem::take(&mut first) && session_ended(&pool, session_id, &tx).await {
                    return;
                }
                match send_new(&pool, user_id, &tx, conversation_id, &mut cursor).await {
                    Ok(true) => {}
                    Ok(false) => return,
                    Err(e) => tracing::warn!("live events: {e}"),
                }
            }
            tokio::select! {
                _ = tx.closed() => return,
                _ = crate::workers::stopped(&mut shutdown) => return,
                _ = recheck.tick() => {
                    if session_ended(&pool, session_id, &tx).await {
                        return;
                    }
                }
                ev = events.recv() => match ev {
                    Ok(HubEvent::Notice(n)) => {
                        let ours = n.conversation_id == Some(conversation_id);
                        // A turn that opened a ticket is announced by the ticket's notice, so
                        // any notice about this conversation may carry messages. Archiving and
                        // forgetting announce no conversation id (forgetting names its person).
                        let someone_else = n.user_id.is_some_and(|u| u != user_id);
                        pending = ours
                            || (n.conversation_id.is_none()
                                && !someone_else
                                && n.kinds.contains(&ChangeKind::ConversationChanged));
                        if ours && n.kinds.contains(&ChangeKind::ConversationChanged) {
                            if session_ended(&pool, session_id, &tx).await {
                                return;
                            }
                            let _ = send_status(&pool, user_id, &tx, conversation_id).await;
                        }
                    }
                    Ok(HubEvent::State(s)) if s.conversation_id == conversation_id => {
                        if session_ended(&pool, session_id, &tx).await {
                            return;
                        }
                        let event = Event::default().event("state").json_data(&s);
                        if let Ok(event) = event && tx.send(Ok(event)).await.is_err() {
                            return;
                        }
                    }
                    Ok(HubEvent::State(_)) => {}
                    Ok(HubEvent::Resync) | Err(broadcast::error::RecvError::Lagged(_)) => pending = true,
                    Err(broadcast::error::RecvError::Closed) => return,
                },
            }
        }
    });
    Sse::new(ReceiverStream::new(rx)).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

/// Sends the messages after `cursor`; false when the client is gone.
async fn send_new(
    pool: &PgPool,
    user_id: Uuid,
    tx: &mpsc::Sender<Result<Event, Infallible>>,
    conversation_id: Uuid,
    cursor: &mut Option<Cursor>,
) -> Result<bool, users::UserError> {
    loop {
        // Read behind the row-level wall, as every end-user request.
        let mut read = Scope::Person(user_id).begin(pool).await?;
        let batch = person::messages_after(&mut read, conversation_id, *cursor, BATCH).await?;
        read.commit().await?;
        let n = batch.len();
        for m in batch {
            let event = Event::default()
                .event("message")
                .id(m.cursor.clone())
                .json_data(&m)
                .expect("a message serializes");
            *cursor = Some(Cursor {
                created_at: m.created_at,
                id: m.id,
            });
            if tx.send(Ok(event)).await.is_err() {
                return Ok(false);
            }
        }
        if (n as i64) < BATCH {
            return Ok(true);
        }
    }
}

async fn send_status(
    pool: &PgPool,
    user_id: Uuid,
    tx: &mpsc::Sender<Result<Event, Infallible>>,
    conversation_id: Uuid,
) -> Result<(), sqlx::Error> {
    let mut read = Scope::Person(user_id).begin(pool).await?;
    let status: Option<String> =
        sqlx::query_scalar("SELECT status FROM conversations WHERE id = $1")
            .bind(conversation_id)
            .fetch_optional(&mut *read)
            .await?;
    read.commit().await?;
    if let Some(status) = status {
        let event = Event::default()
            .event("conversation")
            .json_data(serde_json::json!({ "conversation_id": conversation_id, "status": status }))
            .expect("serializes");
        let _ = tx.send(Ok(event)).await;
    }
    Ok(())
}
