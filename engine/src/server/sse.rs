//! Live conversations: one Server-Sent Events stream per conversation.
//!
//! Each instance keeps one `LISTEN amal_events` connection ([`EventHub`]) and hands each notice
//! to the streams it concerns, and only to them: a new message or status change to the streams
//! of its conversation, a sign-out to the streams of that session, a forgotten account to the
//! streams of that person. A woken stream re-reads the conversation's **messages** after the
//! last one it sent (the person's, the assistant's and staff public replies: internal ticket
//! comments are not messages, so they cannot appear) and sends each as an `event: message`
//! whose id is its cursor; a client reconnecting with `Last-Event-ID` resumes after it.
//! Processing states of turns run by this instance come as `event: state`.
//!
//! A stream outlives the request that authenticated it. When its session ends it sends
//! `event: end` and closes, and nothing more of the conversation goes out on it: at once on a
//! sign-out or deletion (their notices), and otherwise (expiry, an account disabled or made
//! staff, a notice lost) at the next [`LIVE_SWEEP`], when the instance re-checks the sessions
//! of all its streams in one query, and marks them connected in one more. After the listen
//! connection was lost, the same re-check runs as soon as it is back, before any stream
//! catches up, since notices sent meanwhile are gone.

use std::collections::{HashMap, HashSet, VecDeque};
use std::convert::Infallible;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use serde::Serialize;
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::{Notify, mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use uuid::Uuid;

use crate::conversations::{Cursor, person};
use crate::db::person::Scope;
use crate::events::{CHANNEL, ChangeKind, ChangeNotice};
use crate::users;

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

/// How often the instance re-checks the sessions of its streams and marks them connected
/// (one query each for all streams): the longest a stream stays open after its session expired
/// or its account was disabled. Sign-outs and deletions end streams at once.
pub const LIVE_SWEEP: Duration = Duration::from_secs(10);

/// What a stream is woken for (bits of [`Waker::wake`]).
const WAKE_MESSAGES: u8 = 1;
const WAKE_STATUS: u8 = 2;
const WAKE_SESSION: u8 = 4;
/// A stream's session was found ended by the hub's own check: no need to ask again.
const WAKE_ENDED: u8 = 8;

/// Turn states kept for a stream that has not taken them yet; older ones are dropped (a state
/// is a hint, the messages are the truth).
const STATES_KEPT: usize = 16;

/// How one stream is woken: what for, the turn states waiting for it, and the bell.
#[derive(Debug, Default)]
struct Waker {
    wake: AtomicU8,
    states: Mutex<VecDeque<TurnState>>,
    bell: Notify,
}

impl Waker {
    fn ring(&self, what: u8, count: &AtomicU64) {
        self.wake.fetch_or(what, Ordering::AcqRel);
        count.fetch_add(1, Ordering::Relaxed);
        self.bell.notify_one();
    }

    fn push_state(&self, state: TurnState) {
        let mut states = self.states.lock().unwrap_or_else(|e| e.into_inner());
        if states.len() == STATES_KEPT {
            states.pop_front();
        }
        states.push_back(state);
    }

    fn take_states(&self) -> Vec<TurnState> {
        let mut states = self.states.lock().unwrap_or_else(|e| e.into_inner());
        states.drain(..).collect()
    }
}

/// Who a stream is for.
#[derive(Debug, Clone, Copy)]
struct Keys {
    user_id: Uuid,
    session_id: Uuid,
    conversation_id: Uuid,
}

/// The instance's open streams, indexed by what notices name.
#[derive(Debug, Default)]
struct Registry {
    next_id: u64,
    streams: HashMap<u64, (Keys, Arc<Waker>)>,
    by_conversation: HashMap<Uuid, HashSet<u64>>,
    by_session: HashMap<Uuid, HashSet<u64>>,
    by_user: HashMap<Uuid, HashSet<u64>>,
}

fn index_remove(index: &mut HashMap<Uuid, HashSet<u64>>, key: Uuid, id: u64) {
    if let Some(ids) = index.get_mut(&key) {
        ids.remove(&id);
        if ids.is_empty() {
            index.remove(&key);
        }
    }
}

impl Registry {
    fn wakers<'a>(
        &'a self,
        index: &'a HashMap<Uuid, HashSet<u64>>,
        key: Uuid,
    ) -> impl Iterator<Item = &'a Arc<Waker>> + 'a {
        index
            .get(&key)
            .into_iter()
            .flatten()
            .filter_map(|id| self.streams.get(id).map(|(_, w)| w))
    }
}

/// The per-instance fan-out of database notices and turn states to the streams they concern,
/// and the count of its streams.
#[derive(Debug, Clone)]
pub struct EventHub {
    registry: Arc<Mutex<Registry>>,
    wakeups: Arc<AtomicU64>,
    connects: Arc<AtomicU64>,
    sweep: Duration,
}

/// Why a stream was not opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamRefusal {
    /// The session holds [`STREAMS_PER_SESSION`] streams already.
    Session,
    /// The instance holds [`STREAMS_OVERALL`] streams already.
    Overall,
}

/// A stream's place in the hub, given back when dropped (the stream ended).
#[derive(Debug)]
pub struct StreamSlot {
    registry: Arc<Mutex<Registry>>,
    id: u64,
    keys: Keys,
    waker: Arc<Waker>,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut r = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        r.streams.remove(&self.id);
        index_remove(&mut r.by_conversation, self.keys.conversation_id, self.id);
        index_remove(&mut r.by_session, self.keys.session_id, self.id);
        index_remove(&mut r.by_user, self.keys.user_id, self.id);
    }
}

impl Default for EventHub {
    fn default() -> Self {
        Self::new(LIVE_SWEEP)
    }
}

impl EventHub {
    /// A hub with no listener yet that re-checks its streams' sessions every `sweep`.
    pub fn new(sweep: Duration) -> Self {
        EventHub {
            registry: Arc::default(),
            wakeups: Arc::default(),
            connects: Arc::default(),
            sweep,
        }
    }

    /// A place for one more stream of `user` on `conversation_id`, within the caps; from now on
    /// the notices about that conversation, session and person reach it.
    pub fn claim(
        &self,
        user: &users::EndUser,
        conversation_id: Uuid,
    ) -> Result<StreamSlot, StreamRefusal> {
        let mut r = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        if r.streams.len() >= STREAMS_OVERALL {
            return Err(StreamRefusal::Overall);
        }
        if r.by_session.get(&user.session_id).map_or(0, HashSet::len) >= STREAMS_PER_SESSION {
            return Err(StreamRefusal::Session);
        }
        let keys = Keys {
            user_id: user.id,
            session_id: user.session_id,
            conversation_id,
        };
        let id = r.next_id;
        r.next_id += 1;
        let waker = Arc::new(Waker::default());
        r.streams.insert(id, (keys, waker.clone()));
        r.by_conversation
            .entry(conversation_id)
            .or_default()
            .insert(id);
        r.by_session.entry(user.session_id).or_default().insert(id);
        r.by_user.entry(user.id).or_default().insert(id);
        Ok(StreamSlot {
            registry: self.registry.clone(),
            id,
            keys,
            waker,
        })
    }

    /// Streams woken so far (one count per stream and notice that concerned it): what shows
    /// that a notice woke only the streams it concerns.
    pub fn wakeups(&self) -> u64 {
        self.wakeups.load(Ordering::Relaxed)
    }

    /// Times the listen connection was (re-)established.
    pub fn connects(&self) -> u64 {
        self.connects.load(Ordering::Relaxed)
    }

    /// Streams open now.
    pub fn open_streams(&self) -> usize {
        self.lock().streams.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Publishes a turn state to this instance's streams of its conversation.
    pub fn publish_state(&self, state: TurnState) {
        let r = self.lock();
        for w in r.wakers(&r.by_conversation, state.conversation_id) {
            w.push_state(state.clone());
            w.ring(0, &self.wakeups);
        }
    }

    /// Wakes the streams a notice concerns, each once.
    fn dispatch(&self, n: &ChangeNotice) {
        let r = self.lock();
        let mut woken: HashMap<u64, u8> = HashMap::new();
        let mut mark = |index: &HashMap<Uuid, HashSet<u64>>, key: Uuid, what: u8| {
            for id in index.get(&key).into_iter().flatten() {
                *woken.entry(*id).or_default() |= what;
            }
        };
        if n.kinds.contains(&ChangeKind::SessionEnded) {
            match (n.session_id, n.user_id) {
                (Some(s), _) => mark(&r.by_session, s, WAKE_SESSION),
                (None, Some(u)) => mark(&r.by_user, u, WAKE_SESSION),
                (None, None) => {}
            }
        }
        let status = if n.kinds.contains(&ChangeKind::ConversationChanged) {
            WAKE_STATUS
        } else {
            0
        };
        match (n.conversation_id, n.user_id) {
            // A turn that opened a ticket is announced by the ticket's notice, so any notice
            // about a conversation may carry messages.
            (Some(c), _) => mark(&r.by_conversation, c, WAKE_MESSAGES | status),
            // Forgetting names its person and no conversation.
            (None, Some(u)) if status != 0 => mark(&r.by_user, u, WAKE_MESSAGES | status),
            // Archiving changes many conversations at once and names none.
            (None, None) if status != 0 => {
                for id in r.streams.keys() {
                    *woken.entry(*id).or_default() |= WAKE_STATUS;
                }
            }
            _ => {}
        }
        for (id, what) in woken {
            if let Some((_, w)) = r.streams.get(&id) {
                w.ring(what, &self.wakeups);
            }
        }
    }

    /// Re-checks the sessions of every open stream in one query, ends the streams of those
    /// that ended, and marks the others connected (one statement). A database error leaves
    /// the streams open: dropping live streams on a passing error would be worse, and the
    /// next sweep decides.
    async fn sweep(&self, pool: &PgPool) {
        let sessions: Vec<Uuid> = self.lock().by_session.keys().copied().collect();
        if sessions.is_empty() {
            return;
        }
        let now = chrono::Utc::now();
        let checked = async {
            let mut conn = pool.acquire().await?;
            let live = users::live_sessions(&mut conn, &sessions, now).await?;
            // The people are connected: staff replies reach them here, not by e-mail.
            crate::sessions::mark_live(&mut conn, &live, now).await?;
            Ok::<_, users::UserError>(live)
        };
        let live: HashSet<Uuid> = match checked.await {
            Ok(live) => live.into_iter().collect(),
            Err(e) => {
                tracing::warn!("live events: cannot check the streams' sessions: {e}");
                return;
            }
        };
        let r = self.lock();
        for s in sessions.iter().filter(|s| !live.contains(s)) {
            for w in r.wakers(&r.by_session, *s) {
                w.ring(WAKE_ENDED, &self.wakeups);
            }
        }
    }

    /// Wakes every stream to catch up: after the listen connection was (re-)established,
    /// notices may have been missed. The sessions are re-checked first, so that no stream
    /// catches up on a session that ended meanwhile.
    async fn resync(&self, pool: &PgPool) {
        self.sweep(pool).await;
        let r = self.lock();
        for (_, w) in r.streams.values() {
            w.ring(WAKE_MESSAGES | WAKE_STATUS, &self.wakeups);
        }
    }

    /// Listens on [`CHANNEL`] until `shutdown`, reconnecting after failures (then re-checking
    /// every stream, see [`Self::resync`]), and sweeps the streams' sessions every
    /// [`LIVE_SWEEP`] (or as configured).
    pub fn spawn_listener(
        &self,
        pool: PgPool,
        mut shutdown: watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let hub = self.clone();
        // Its own connection, not one of the pool's: held for as long as the server runs, and
        // truly re-opened after a loss (a pooled one could come back from the pool while the
        // database refuses new connections, hiding the outage).
        let listen_pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(5))
            .max_lifetime(None)
            .idle_timeout(None)
            .connect_lazy_with((*pool.connect_options()).clone());
        tokio::spawn(async move {
            let mut sweep =
                tokio::time::interval_at(tokio::time::Instant::now() + hub.sweep, hub.sweep);
            sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let listener = async {
                    let mut l = PgListener::connect_with(&listen_pool).await?;
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
                hub.connects.fetch_add(1, Ordering::Relaxed);
                hub.resync(&pool).await;
                loop {
                    tokio::select! {
                        // `try_recv`, not `recv`: `recv` reconnects by itself and would hide
                        // that notices were lost.
                        n = listener.try_recv() => match n {
                            Ok(Some(n)) => match ChangeNotice::parse(n.payload()) {
                                Ok(notice) => hub.dispatch(&notice),
                                Err(e) => tracing::debug!(error = %e, "ignoring a foreign notification"),
                            },
                            Ok(None) => {
                                tracing::warn!("live events: listen connection lost");
                                break;
                            }
                            Err(e) => {
                                tracing::warn!("live events: listen connection lost: {e}");
                                break;
                            }
                        },
                        _ = sweep.tick() => hub.sweep(&pool).await,
                        _ = crate::workers::stopped(&mut shutdown) => return,
                    }
                }
            }
        })
    }
}

/// Most messages sent per catch-up query.
const BATCH: i64 = 100;

/// Whether the stream's session has ended (`known_ended`: the hub's sweep found so); if so,
/// tells the client (`event: end`) so that the caller closes the stream. A database error
/// keeps the stream (the next sweep decides), since dropping live streams on a passing error
/// would be worse.
async fn session_ended(
    pool: &PgPool,
    session_id: Uuid,
    known_ended: bool,
    tx: &mpsc::Sender<Result<Event, Infallible>>,
) -> bool {
    let live = if known_ended {
        false
    } else {
        let live = match pool.acquire().await {
            Ok(mut conn) => users::session_is_live(&mut conn, session_id, chrono::Utc::now()).await,
            Err(e) => Err(e.into()),
        };
        live.unwrap_or_else(|e| {
            tracing::warn!("live events: cannot check the session: {e}");
            true
        })
    };
    if !live
        && let Ok(event) = Event::default()
            .event("end")
            .json_data(serde_json::json!({ "reason": "session_ended" }))
    {
        let _ = tx.send(Ok(event)).await;
    }
    !live
}

/// The stream of one conversation for its owner (checked by the caller, who claimed `slot`
/// for it): the messages after `after` (`None`: from the first), then live ones. The caller
/// passes the newest message at connection time when the client gives no resume point.
pub fn stream(
    state: &super::AppState,
    slot: StreamSlot,
    after: Option<Cursor>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>> + use<>> {
    let pool = state.pool.clone();
    let mut shutdown = state.shutdown.subscribe();
    let (tx, rx) = mpsc::channel::<Result<Event, Infallible>>(64);
    tokio::spawn(async move {
        let Keys {
            session_id,
            conversation_id,
            user_id,
            ..
        } = slot.keys;
        let waker = slot.waker.clone();
        let _slot = slot;
        let mut cursor = after;
        // The request that opened the stream has just authenticated the session; it is
        // connected from now on (the hub's sweep renews this while the stream is open).
        if let Ok(mut conn) = pool.acquire().await
            && let Err(e) =
                crate::sessions::mark_live(&mut conn, &[session_id], chrono::Utc::now()).await
        {
            tracing::warn!("live events: cannot mark the session connected: {e}");
        }
        // Catch up at once: anything committed since the cursor was read is sent. The slot was
        // claimed before, so whatever commits from now on wakes this stream.
        let mut wake = WAKE_MESSAGES;
        loop {
            if wake & (WAKE_SESSION | WAKE_ENDED) != 0
                && session_ended(&pool, session_id, wake & WAKE_ENDED != 0, &tx).await
            {
                return;
            }
            for s in waker.take_states() {
                let event = Event::default().event("state").json_data(&s);
                if let Ok(event) = event
                    && tx.send(Ok(event)).await.is_err()
                {
                    return;
                }
            }
            if wake & WAKE_MESSAGES != 0 {
                match send_new(&pool, user_id, &tx, conversation_id, &mut cursor).await {
                    Ok(true) => {}
                    Ok(false) => return,
                    Err(e) => tracing::warn!("live events: {e}"),
                }
            }
            if wake & WAKE_STATUS != 0 {
                let _ = send_status(&pool, user_id, &tx, conversation_id).await;
            }
            tokio::select! {
                _ = tx.closed() => return,
                _ = crate::workers::stopped(&mut shutdown) => return,
                _ = waker.bell.notified() => wake = waker.wake.swap(0, Ordering::AcqRel),
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
