//! Demo traffic: simulated people writing in Arabic, French and English (some of them in
//! crisis), so that a demo console shows conversations, escalations and SLA countdowns moving.
//!
//! Every simulated message goes through [`conversations::post_message`], exactly as a real
//! one: the crisis gate, the decision, the ticket. The people are end-user accounts under
//! `simulated.amal.example`, created with consent, so the demo data never mixes with real
//! accounts. The messages come from the project's own evaluation sets (knowledge questions,
//! crisis and non-crisis messages), never invented at run time.

use std::time::Duration;

use chrono::Utc;
use serde::Deserialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::conversations::{self, ConversationError, MessageContent};
use crate::decision::auto::{DecisionEngine, Mode};
use crate::lang::Lang;
use crate::turn::{self, TurnError};

/// The domain of every simulated person's e-mail address.
pub const EMAIL_DOMAIN: &str = "simulated.amal.example";

const KNOWLEDGE_QUESTIONS: &str = include_str!("../../seeds/knowledge/eval.jsonl");
const CRISIS_MESSAGES: &str = include_str!("../../seeds/crisis/eval.jsonl");

/// First names of the simulated people, by language.
const NAMES: [(Lang, &[&str]); 3] = [
    (
        Lang::Ar,
        &["Amina", "Karim", "Walid", "Souad", "Nour", "Hakim"],
    ),
    (
        Lang::Fr,
        &["Yacine", "Lina", "Sofiane", "Meriem", "Julien", "Nadia"],
    ),
    (Lang::En, &["Sarah", "Adam", "Maya", "Omar", "Lea", "Sami"]),
];

/// What the simulated people say.
#[derive(Debug, Clone, Default)]
pub struct Script {
    questions: Vec<(Lang, String)>,
    crisis: Vec<(Lang, String)>,
    everyday: Vec<(Lang, String)>,
}

#[derive(Deserialize)]
struct QuestionLine {
    q: String,
    lang: Lang,
}

#[derive(Deserialize)]
struct CrisisLine {
    text: String,
    lang: Lang,
    crisis: bool,
}

impl Script {
    /// The built-in script: the knowledge base's evaluation questions, and the crisis gate's
    /// evaluation messages (crisis and everyday ones).
    pub fn builtin() -> Self {
        let mut script = Script::default();
        for line in KNOWLEDGE_QUESTIONS.lines().filter(|l| !l.trim().is_empty()) {
            if let Ok(q) = serde_json::from_str::<QuestionLine>(line) {
                script.questions.push((q.lang, q.q));
            }
        }
        for line in CRISIS_MESSAGES.lines().filter(|l| !l.trim().is_empty()) {
            if let Ok(m) = serde_json::from_str::<CrisisLine>(line) {
                if m.crisis {
                    script.crisis.push((m.lang, m.text));
                } else {
                    script.everyday.push((m.lang, m.text));
                }
            }
        }
        script
    }

    /// Messages in each pool: questions, crisis, everyday.
    pub fn sizes(&self) -> (usize, usize, usize) {
        (self.questions.len(), self.crisis.len(), self.everyday.len())
    }
}

/// How much traffic to make.
#[derive(Debug, Clone)]
pub struct SimulatorOptions {
    /// Messages per minute across all simulated people.
    pub messages_per_minute: u32,
    /// Percentage of messages written in crisis (0 to 100).
    pub crisis_percent: u32,
    /// Seconds between SLA sweeps (breaches are flagged as they happen).
    pub sweep_interval_seconds: u64,
    /// Stop after this many messages (`None`: until stopped).
    pub max_messages: Option<u64>,
    /// Seed of the pseudo-random choices (the same seed replays the same traffic).
    pub seed: u64,
}

impl Default for SimulatorOptions {
    fn default() -> Self {
        SimulatorOptions {
            messages_per_minute: 12,
            crisis_percent: 8,
            sweep_interval_seconds: 10,
            max_messages: None,
            seed: 2026,
        }
    }
}

/// What one simulated message did, for the caller's log.
#[derive(Debug, Clone)]
pub struct SimulatedTurn {
    /// The conversation.
    pub conversation_id: Uuid,
    /// The language written in.
    pub lang: Lang,
    /// rag or support.
    pub decision: String,
    /// The reason code.
    pub reason_code: Option<String>,
    /// The ticket opened or joined.
    pub ticket_number: Option<String>,
}

/// A small deterministic generator (xorshift64*): the demo needs variety, not cryptography,
/// and a seed that replays the same traffic.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed (0 is replaced: xorshift never leaves zero).
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }

    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// The simulated traffic: people, their open conversations, and the script.
pub struct Simulator {
    pool: PgPool,
    options: SimulatorOptions,
    script: Script,
    rng: Rng,
    open: Vec<(Uuid, Lang)>,
    sent: u64,
}

/// Why the simulator stopped.
#[derive(Debug, thiserror::Error)]
pub enum SimulatorError {
    /// The script has no message for a language.
    #[error("the simulator's script has no {0} message")]
    EmptyScript(&'static str),
    /// A conversation operation failed.
    #[error(transparent)]
    Conversation(#[from] ConversationError),
    /// A turn failed.
    #[error(transparent)]
    Turn(#[from] crate::turn::TurnError),
    /// A database error.
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
}

impl Simulator {
    /// A simulator over `pool` with the built-in script.
    pub fn new(pool: PgPool, options: SimulatorOptions) -> Result<Self, SimulatorError> {
        let script = Script::builtin();
        if script.questions.is_empty() {
            return Err(SimulatorError::EmptyScript("knowledge question"));
        }
        if script.crisis.is_empty() {
            return Err(SimulatorError::EmptyScript("crisis"));
        }
        Ok(Simulator {
            rng: Rng::new(options.seed),
            pool,
            options,
            script,
            open: Vec::new(),
            sent: 0,
        })
    }

    /// Messages sent so far.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// Sends one message: a new person starting a conversation, or a follow-up in an open one.
    pub async fn step(&mut self, engine: &DecisionEngine) -> Result<SimulatedTurn, SimulatorError> {
        let follow_up = !self.open.is_empty() && self.rng.below(10) < 4;
        let (conversation_id, lang) = if follow_up {
            self.open[self.rng.below(self.open.len())]
        } else {
            let lang = Lang::ALL[self.rng.below(3)];
            let user = self.person(lang).await?;
            let c = conversations::start(&self.pool, user, Mode::Auto, Some(lang)).await?;
            self.open.push((c.id, lang));
            // The newest few conversations stay open for follow-ups.
            if self.open.len() > 12 {
                self.open.remove(0);
            }
            (c.id, lang)
        };
        let text = self.pick_message(lang);
        let content = MessageContent::parse(&text).map_err(ConversationError::from)?;
        let key = format!("sim-{}-{}", self.options.seed, self.sent);
        let turn =
            match turn::post_message(&self.pool, engine, conversation_id, Some(&key), &content)
                .await
            {
                Err(TurnError::Conversation(ConversationError::NotActive { .. })) => {
                    // Staff closed it meanwhile: the person stops writing there.
                    self.open.retain(|(id, _)| *id != conversation_id);
                    return Box::pin(self.step(engine)).await;
                }
                other => other?,
            };
        self.sent += 1;
        Ok(SimulatedTurn {
            conversation_id,
            lang,
            decision: turn.decision.decision.clone(),
            reason_code: turn.decision.reason_code.clone(),
            ticket_number: turn.ticket.map(|t| t.ticket_number),
        })
    }

    fn pick_message(&mut self, lang: Lang) -> String {
        let crisis = (self.rng.below(100) as u32) < self.options.crisis_percent;
        let everyday = !crisis && self.rng.below(10) < 2;
        let pool = if crisis {
            &self.script.crisis
        } else if everyday {
            &self.script.everyday
        } else {
            &self.script.questions
        };
        let in_lang: Vec<&String> = pool
            .iter()
            .filter(|(l, _)| *l == lang)
            .map(|(_, t)| t)
            .collect();
        let candidates: Vec<&String> = if in_lang.is_empty() {
            pool.iter().map(|(_, t)| t).collect()
        } else {
            in_lang
        };
        candidates[self.rng.below(candidates.len())].clone()
    }

    /// A simulated person writing in `lang` (created with consent when new).
    async fn person(&mut self, lang: Lang) -> Result<Uuid, SimulatorError> {
        let names = NAMES
            .iter()
            .find(|(l, _)| *l == lang)
            .map(|(_, n)| *n)
            .unwrap_or(&["Sam"]);
        let name = names[self.rng.below(names.len())];
        let n = self.rng.below(1_000);
        let email = format!("{}.{n}@{EMAIL_DOMAIN}", name.to_lowercase());
        // The placeholder hash matches no password: these accounts cannot sign in.
        Ok(sqlx::query_scalar(
            "INSERT INTO users (email, password_hash, name, locale, consent_data_storage, consent_timestamp) \
             VALUES ($1, '!simulated', $2, $3, true, now()) \
             ON CONFLICT (email) DO UPDATE SET updated_at = now() RETURNING id",
        )
        .bind(&email)
        .bind(format!("{name} (simulated)"))
        .bind(lang.locale())
        .fetch_one(&self.pool)
        .await?)
    }

    /// Runs until `stop` turns true or `max_messages` are sent: messages at the configured
    /// rate, and an SLA sweep every `sweep_interval_seconds` so breaches show as they happen.
    /// A failed step is logged and the traffic goes on (a demo must survive a restart of the
    /// database).
    pub async fn run(
        &mut self,
        engine: &DecisionEngine,
        mut stop: tokio::sync::watch::Receiver<bool>,
        mut on_turn: impl FnMut(&SimulatedTurn),
    ) {
        let per_message =
            Duration::from_secs_f64(60.0 / f64::from(self.options.messages_per_minute.max(1)));
        let mut messages = tokio::time::interval(per_message);
        let mut sweeps = tokio::time::interval(Duration::from_secs(
            self.options.sweep_interval_seconds.max(1),
        ));
        loop {
            tokio::select! {
                _ = stop.changed() => {
                    if *stop.borrow() { return; }
                }
                _ = messages.tick() => {
                    match self.step(engine).await {
                        Ok(turn) => on_turn(&turn),
                        Err(e) => tracing::warn!(error = %e, "simulated message failed"),
                    }
                    if self.options.max_messages.is_some_and(|max| self.sent >= max) {
                        return;
                    }
                }
                _ = sweeps.tick() => {
                    if let Err(e) = self.sweep().await {
                        tracing::warn!(error = %e, "SLA sweep failed");
                    }
                }
            }
        }
    }

    async fn sweep(&self) -> Result<(), SimulatorError> {
        let mut conn = self.pool.acquire().await?;
        crate::tickets::sweep(&mut conn, Utc::now()).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_script_has_every_language_and_crisis_messages() {
        let script = Script::builtin();
        let (questions, crisis, everyday) = script.sizes();
        assert!(questions >= 30 && crisis >= 30 && everyday >= 30);
        for lang in Lang::ALL {
            assert!(script.questions.iter().any(|(l, _)| *l == lang));
            assert!(script.crisis.iter().any(|(l, _)| *l == lang));
        }
    }

    #[test]
    fn rng_replays_from_its_seed() {
        let a: Vec<usize> = {
            let mut r = Rng::new(7);
            (0..20).map(|_| r.below(100)).collect()
        };
        let mut r = Rng::new(7);
        let b: Vec<usize> = (0..20).map(|_| r.below(100)).collect();
        assert_eq!(a, b);
        assert!(a.iter().any(|&x| x != a[0]));
    }
}
