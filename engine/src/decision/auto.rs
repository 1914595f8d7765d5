//! The AUTO decision for one message, in a fixed order:
//!
//! 1. the crisis gate ([`super::crisis`]): a match returns at once — SUPPORT, category `crisis`,
//!    priority `urgent`, confidence 1 — before retrieval even runs, so nothing later (retrieval,
//!    settings, a model) can see the message, let alone change that outcome;
//! 2. an explicit request for a human ([`super::human_request`]): SUPPORT;
//! 3. retrieval: no approved chunk in the person's language, or a calibrated confidence below
//!    the threshold, means SUPPORT (or, when configured, one clarifying question); otherwise RAG;
//! 4. the RAG answer is composed offline from the approved chunks only (extractive), in the
//!    person's language, citing the documents it used.
//!
//! [`DecisionEngine::decide`] never fails: when retrieval itself fails (database or embedding
//! provider down) the message goes to a human (`retrieval_error`), because a person who wrote
//! to the service must never be left without an answer.

use std::str::FromStr;

use serde::Serialize;
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use super::answer::{Answer, SentenceMeaning, compose_answer, finish_answer};
use super::crisis::semantic::SemanticNet;
use super::crisis::{self, CrisisGate, CrisisKind, CrisisMatch, CrisisNumbers};
use super::human_request::{self, HumanRequestDetector, HumanRequestMatch};
use super::llm::{ChatModel, ModelReply};
use super::replies::{
    clarifying_question, handover_message, out_of_scope_message, ticket_open_message,
};
use super::rules::RuleError;
use super::scope::net::{ScopeNet, ScopeScore};
use super::scope::{self, OffTopicMatch, ScopeDetector};

use crate::config::RoutingSettings;
use crate::knowledge::{Hit, Retriever, sentences};
use crate::lang::Lang;

/// Environment variable: the confidence a top hit needs for a RAG answer (0..1).
pub const THRESHOLD_ENV: &str = "AMAL_RAG_THRESHOLD";
/// Environment variable: `1`/`true` to ask one clarifying question instead of escalating on low
/// confidence.
pub const CLARIFY_ENV: &str = "AMAL_CLARIFY";
/// The default threshold: the calibrated confidence is the probability that the top hit answers,
/// so 0.5 means "more likely than not".
pub const DEFAULT_THRESHOLD: f64 = 0.5;
/// `model_used` of the offline extractive answer.
pub const OFFLINE_MODEL: &str = "offline-extractive";
/// How many chunks retrieval returns for a decision.
const SEARCH_K: usize = 5;
/// How many chunks an answer may draw from.
pub(crate) const ANSWER_CHUNKS: usize = 3;
/// Ticket categories (the `ticket_categories` lookup rows) a document category may map to.
const TICKET_CATEGORIES: [&str; 5] = [
    "addiction",
    "mental_health",
    "prevention",
    "resources",
    "crisis",
];

/// Stable reason codes written to `decision_logs.reason_code` (besides `crisis_<kind>`).
pub mod reason {
    /// The person explicitly asked for a human.
    pub const HUMAN_REQUESTED: &str = super::human_request::REASON_CODE;
    /// Approved sources in the language exist, but none reaches the threshold.
    pub const LOW_CONFIDENCE: &str = "low_confidence";
    /// No approved source in the person's language matched at all.
    pub const NO_SOURCE_IN_LANGUAGE: &str = "no_source_in_language";
    /// The top approved source reaches the threshold: the assistant answers from it.
    pub const RAG_CONFIDENT: &str = "rag_confident";
    /// Low confidence, and the service prefers one clarifying question to an escalation.
    pub const CLARIFY: &str = "clarify";
    /// The conversation is in SUPPORT mode: every message goes to a human.
    pub const SUPPORT_MODE: &str = "support_mode";
    /// The chat model found that the approved sources do not answer: a human does.
    pub const MODEL_DECLINED: &str = "model_declined";
    /// Retrieval failed; a human takes over rather than leaving the person unanswered.
    pub const RETRIEVAL_ERROR: &str = "retrieval_error";
    /// The conversation's ticket is open: the message goes to the team, not the assistant.
    pub const TICKET_OPEN: &str = "ticket_open";
    /// The message is about another subject: the assistant says what the service helps with.
    pub const OUT_OF_SCOPE: &str = super::scope::REASON_CODE;
    /// The prefix of the crisis gate's reason codes (`crisis_<kind>`).
    pub const CRISIS_PREFIX: &str = "crisis_";

    /// Whether a stored reason code is the crisis gate's: the reply was the safety message.
    pub fn is_crisis(code: &str) -> bool {
        code.starts_with(CRISIS_PREFIX)
    }
}

/// Where a message goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Route {
    /// The assistant answers from the approved knowledge base.
    Rag,
    /// A human takes over through a support ticket.
    Support,
}

impl Route {
    /// The `decision_logs.decision` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Route::Rag => "rag",
            Route::Support => "support",
        }
    }
}

/// The reason of a decision in the three service languages (for the console's reader).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reasons {
    /// Arabic.
    pub ar: String,
    /// French.
    pub fr: String,
    /// English.
    pub en: String,
}

impl Reasons {
    fn new(ar: &str, fr: &str, en: &str) -> Self {
        Reasons {
            ar: ar.to_string(),
            fr: fr.to_string(),
            en: en.to_string(),
        }
    }
}

/// What the engine decided for one message (pure data; nothing is stored by deciding).
#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    /// RAG or SUPPORT.
    pub decision: Route,
    /// Ticket category code for SUPPORT, `None` for RAG.
    pub category: Option<String>,
    /// Ticket priority code for SUPPORT, `None` for RAG.
    pub priority: Option<String>,
    /// Stable machine-readable reason ([`reason`], or `crisis_<kind>`).
    pub reason_code: String,
    /// The reason in Arabic, French and English.
    pub reason: Reasons,
    /// 1.0 for the deterministic steps; retrieval's calibrated confidence otherwise.
    pub confidence: f64,
    /// The language the reply is written in.
    pub lang: Lang,
    /// What the decision rests on (crisis rule, request rule, chunk ids and scores, citations).
    pub evidence: Value,
    /// `decision_logs.model_used`: the answer's composer, `None` when no answer is composed.
    pub model_used: Option<String>,
    /// Prompt tokens of the chat model, when one was asked.
    pub prompt_tokens: Option<i32>,
    /// Completion tokens of the chat model, when one was asked.
    pub completion_tokens: Option<i32>,
    /// The reply the person receives at once: the safety message, the RAG answer, the
    /// clarifying question or the hand-over notice (its ticket number is added when stored).
    pub reply: String,
    /// The RAG answer with its citations (RAG only).
    pub answer: Option<Answer>,
    /// The crisis gate's match, when it fired.
    #[serde(skip)]
    pub crisis: Option<CrisisMatch>,
    /// The retrieved hits (best first), for callers that show them.
    #[serde(skip)]
    pub hits: Vec<Hit>,
}

impl Decision {
    /// True when the crisis gate decided.
    pub fn is_crisis(&self) -> bool {
        self.crisis.is_some()
    }
}

/// How the conversation asks to be handled (the `conversation_modes` rows).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize, utoipa::ToSchema,
)]
pub enum Mode {
    /// The engine decides per message.
    #[serde(rename = "AUTO")]
    Auto,
    /// The person prefers the knowledge base. The assistant still never answers without an
    /// approved source, and crises and explicit requests for a human still reach a human, so
    /// the decision is the same as AUTO.
    #[serde(rename = "RAG")]
    Rag,
    /// The person wants a human: every message goes to support (crises still as crises).
    #[serde(rename = "SUPPORT")]
    Support,
}

impl Mode {
    /// The `conversations.mode` code.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Auto => "AUTO",
            Mode::Rag => "RAG",
            Mode::Support => "SUPPORT",
        }
    }
}

impl FromStr for Mode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_uppercase().as_str() {
            "AUTO" => Ok(Mode::Auto),
            "RAG" => Ok(Mode::Rag),
            "SUPPORT" => Ok(Mode::Support),
            other => Err(format!(
                "unknown mode `{other}` (expected AUTO, RAG or SUPPORT)"
            )),
        }
    }
}

/// The context of a message beyond its text.
#[derive(Debug, Clone, Copy)]
pub struct TurnContext {
    /// The conversation's mode.
    pub mode: Mode,
    /// The assistant's previous reply in this conversation was a clarifying question: at most
    /// one is asked, the next low-confidence message goes to a human.
    pub clarified_before: bool,
    /// The conversation has an open ticket (open, in progress or pending): a person of the
    /// team has it, so its messages go to them and the assistant no longer answers them.
    pub ticket_open: bool,
}

impl Default for TurnContext {
    fn default() -> Self {
        TurnContext {
            mode: Mode::Auto,
            clarified_before: false,
            ticket_open: false,
        }
    }
}

/// The decision engine: detectors, retriever and settings, built once and shared.
#[derive(Debug)]
pub struct DecisionEngine {
    crisis: CrisisGate,
    human: HumanRequestDetector,
    scope: ScopeDetector,
    retriever: Retriever,
    numbers: CrisisNumbers,
    /// Minimum calibrated confidence for a RAG answer.
    pub threshold: f64,
    /// Ask one clarifying question instead of escalating on low confidence.
    pub clarify: bool,
    /// The chat model that writes RAG answers; `None`: the offline extractive answer.
    pub model: Option<ChatModel>,
    /// The crisis gate's second net, built on first use (`None` inside: no semantic model).
    net: tokio::sync::OnceCell<Option<SemanticNet>>,
    /// The scope net, built on first use (`None` inside: no semantic model).
    scope_net: tokio::sync::OnceCell<Option<ScopeNet>>,
    /// How the tickets this engine's turns open reach staff (routing off unless the caller
    /// sets it, e.g. from [`RoutingSettings::from_env`]).
    pub routing: RoutingSettings,
}

impl DecisionEngine {
    /// An engine with the built-in rules and the given retriever, numbers and settings.
    pub fn new(
        retriever: Retriever,
        numbers: CrisisNumbers,
        threshold: f64,
        clarify: bool,
    ) -> Result<Self, RuleError> {
        Ok(DecisionEngine {
            crisis: CrisisGate::builtin()?,
            human: HumanRequestDetector::builtin()?,
            scope: ScopeDetector::builtin()?,
            retriever,
            numbers,
            threshold: threshold.clamp(0.0, 1.0),
            clarify,
            model: None,
            net: tokio::sync::OnceCell::new(),
            scope_net: tokio::sync::OnceCell::new(),
            routing: RoutingSettings::default(),
        })
    }

    /// From the environment: `AMAL_CRISIS_RULES_DIR` (extra crisis rules), `AMAL_CRISIS_LINE`,
    /// `AMAL_EMERGENCY_NUMBER`, [`THRESHOLD_ENV`], [`CLARIFY_ENV`] and the chat model's
    /// `AMAL_LLM_*` ([`super::llm`]).
    pub fn from_env(retriever: Retriever) -> Result<Self, RuleError> {
        let threshold = std::env::var(THRESHOLD_ENV)
            .ok()
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|t| (0.0..=1.0).contains(t))
            .unwrap_or(DEFAULT_THRESHOLD);
        let clarify = std::env::var(CLARIFY_ENV)
            .map(|v| {
                matches!(
                    v.trim().to_ascii_lowercase().as_str(),
                    "1" | "true" | "yes" | "on"
                )
            })
            .unwrap_or(false);
        Ok(DecisionEngine {
            crisis: CrisisGate::from_env()?,
            human: HumanRequestDetector::builtin()?,
            scope: ScopeDetector::builtin()?,
            retriever,
            numbers: CrisisNumbers::from_env(),
            threshold: threshold.clamp(0.0, 1.0),
            clarify,
            // A misconfigured model must not stop the service: warn and answer offline.
            model: ChatModel::from_env().unwrap_or_else(|e| {
                tracing::warn!(error = %e, "chat model not used");
                None
            }),
            net: tokio::sync::OnceCell::new(),
            scope_net: tokio::sync::OnceCell::new(),
            routing: RoutingSettings::default(),
        })
    }

    /// The crisis gate's assessment of `text`, made once per message and passed to
    /// [`Self::decide_turn`]: what must reach a human whatever else would refuse the message (a
    /// closed conversation, a reused idempotency key). The deterministic rules first; when they
    /// find nothing, the second net ([`SemanticNet`]), which can only add an escalation.
    pub async fn assess_crisis(&self, text: &str) -> Option<CrisisMatch> {
        if let Some(m) = self.crisis.assess(text) {
            return Some(m);
        }
        self.second_net(text).await
    }

    /// The deterministic rules alone (no model): for tools that compare the two nets.
    pub fn assess_crisis_rules(&self, text: &str) -> Option<CrisisMatch> {
        self.crisis.assess(text)
    }

    async fn second_net(&self, text: &str) -> Option<CrisisMatch> {
        // A message with no letters or digits ("👍", "???") has no meaning to compare.
        if !text.chars().any(crate::lang::is_alphanumeric) {
            return None;
        }
        let net = self.semantic_net().await?;
        match self.retriever.message_vector(text).await {
            Ok(v) => net.assess(text, &v),
            Err(e) => {
                // The rules have already run; the net failing must not stop the turn.
                tracing::warn!(error = %e, "crisis second net skipped: embedding failed");
                None
            }
        }
    }

    /// The second net, built on first use from the retriever's embedder: `None` with the
    /// hashed embedder (spelling, not meaning) or when building it failed (logged).
    pub async fn semantic_net(&self) -> Option<&SemanticNet> {
        self.net
            .get_or_init(|| async {
                match SemanticNet::build(self.retriever.embedder()).await {
                    Ok(net) => net,
                    Err(e) => {
                        tracing::error!(error = %e, "crisis second net unavailable: rules only");
                        None
                    }
                }
            })
            .await
            .as_ref()
    }

    /// The scope net, built on first use from the retriever's embedder: `None` with the hashed
    /// embedder or when building it failed (logged).
    pub async fn scope_net(&self) -> Option<&ScopeNet> {
        self.scope_net
            .get_or_init(|| async {
                match ScopeNet::build(self.retriever.embedder()).await {
                    Ok(net) => net,
                    Err(e) => {
                        tracing::error!(error = %e, "scope net unavailable: scope rules only");
                        None
                    }
                }
            })
            .await
            .as_ref()
    }

    /// The scope net's view of a message retrieval found no confident source for
    /// ([`ScopeNet`]): `None` when the message carries a word of the service's subjects or of
    /// distress (never off-topic), or when there is no net.
    async fn scope_by_meaning(&self, text: &str) -> Option<(ScopeScore, Option<OffTopicMatch>)> {
        if self.scope.mentions_service_subject(text) {
            return None;
        }
        let net = self.scope_net().await?;
        match self.retriever.message_vector(text).await {
            Ok(v) => {
                let score = net.score(&v);
                Some((score, net.verdict(&score)))
            }
            Err(e) => {
                tracing::warn!(error = %e, "scope net skipped: embedding failed");
                None
            }
        }
    }

    /// How close in meaning each sentence of the hits' chunks is to `text`, from the chunks'
    /// sentence vectors and the message's vector (already in the query cache): empty with the
    /// hashed embedder, for chunks whose sentences are not embedded yet, or on an error
    /// (logged; the answer then goes by words alone).
    async fn sentence_meaning(&self, pool: &PgPool, text: &str, hits: &[Hit]) -> SentenceMeaning {
        let embedder = self.retriever.embedder();
        if !sentences::has_meaning(embedder) || hits.is_empty() {
            return SentenceMeaning::new();
        }
        let chunks: Vec<Uuid> = hits.iter().map(|h| h.chunk_id).collect();
        let found = match self.retriever.message_vector(text).await {
            Ok(v) => sentences::similarities(pool, &chunks, embedder.model(), &v).await,
            Err(e) => Err(e),
        };
        found.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "sentences chosen by words alone");
            SentenceMeaning::new()
        })
    }

    /// The safety message for `text` when the crisis gate fires on it (in the language the
    /// gate read, as [`crisis_decision`] does), on paths that store nothing and open no ticket,
    /// such as a person without consent: the `unstored` text, which promises nobody (no one
    /// from the team will see the message) and gives the numbers and how to reach the team.
    pub async fn safety_reply(&self, text: &str) -> Option<String> {
        self.assess_crisis(text)
            .await
            .map(|m| crisis::unstored_safety_message(m.language, &self.numbers))
    }

    /// The retriever (and through it the embedder and the query cache).
    pub fn retriever(&self) -> &Retriever {
        &self.retriever
    }

    /// The crisis numbers substituted into safety messages.
    pub fn numbers(&self) -> &CrisisNumbers {
        &self.numbers
    }

    /// The AUTO decision for a message of an AUTO conversation with no earlier clarification.
    pub async fn decide(&self, pool: &PgPool, text: &str, lang: Lang) -> Decision {
        let crisis = self.assess_crisis(text).await;
        self.decide_turn(pool, text, lang, TurnContext::default(), crisis)
            .await
    }

    /// The decision for a message in its conversation's context, given the crisis gate's
    /// assessment of it ([`Self::assess_crisis`]). Reads only.
    pub async fn decide_turn(
        &self,
        pool: &PgPool,
        text: &str,
        lang: Lang,
        ctx: TurnContext,
        crisis: Option<CrisisMatch>,
    ) -> Decision {
        // Step 1. The crisis gate is pure and ran on the raw text before anything else; a match
        // returns here, so no later step (retrieval, mode, settings) is even consulted.
        if let Some(m) = crisis {
            return crisis_decision(m, &self.numbers);
        }
        // A person of the team has this conversation: everything the person writes is for
        // them (the turn joins the open ticket), and an answer from the assistant in between
        // would talk over them. Nothing to retrieve.
        if ctx.ticket_open {
            let mut d = support(
                lang,
                "resources",
                reason::TICKET_OPEN,
                Reasons::new(
                    "للمحادثة طلب مفتوح: الرسالة لفريق الدعم",
                    "La conversation a une demande ouverte : le message va à l'équipe",
                    "The conversation has an open ticket: the message goes to the team",
                ),
                1.0,
                json!({"step": "ticket_open", "lang": lang.code()}),
                Vec::new(),
            );
            d.reply = ticket_open_message(lang).to_string();
            return d;
        }
        // Step 2 (and SUPPORT mode): the person asked for a human. Retrieval still runs, only
        // to give the ticket a topic.
        let human = self.human.detect(text);
        let support_mode = ctx.mode == Mode::Support;
        // Step 3. A message about another subject (weather, football, paperwork, prices) gets a
        // short reply saying what the service helps with, and no ticket; the rules never fire on
        // a word of the service's subjects or of distress. Nothing to retrieve.
        if human.is_none()
            && !support_mode
            && let Some(m) = self.scope.off_topic(text)
        {
            return out_of_scope(lang, m);
        }
        // Step 4. Retrieval in every language, each hit brought to the person's language
        // through the article's translation when one exists.
        let outcome = self
            .retriever
            .search_across(pool, text, lang, SEARCH_K)
            .await;
        let outcome = match outcome {
            Ok(o) => o,
            Err(e) => return retrieval_error_decision(lang, human.as_ref(), &e.to_string()),
        };
        let hits = outcome.results;
        let confidence = outcome.confidence.clamp(0.0, 1.0);
        let top_category = hits
            .first()
            .and_then(|h| h.category.clone())
            .filter(|c| TICKET_CATEGORIES.contains(&c.as_str()));
        let mut evidence = json!({
            "step": "retrieval",
            "threshold": self.threshold,
            "confidence": confidence,
            "lang": lang.code(),
            "chunks": chunk_evidence(&hits),
            "corrections": outcome.corrections,
        });

        if let Some(h) = human {
            evidence["step"] = json!("human_request");
            evidence["rule"] = json!(h.rule_id);
            evidence["matched"] = json!(h.matched);
            // The person's topic, when retrieval recognised it; otherwise "resources": someone
            // asking for a person most often wants to be pointed to help.
            let category = top_category
                .filter(|_| confidence >= self.threshold)
                .unwrap_or_else(|| "resources".to_string());
            return support(
                lang,
                &category,
                reason::HUMAN_REQUESTED,
                Reasons::new(
                    "طلب صريح للتحدث مع شخص",
                    "Demande explicite de parler à quelqu'un",
                    "Explicit request for a human",
                ),
                1.0,
                evidence,
                hits,
            );
        }
        if support_mode {
            evidence["step"] = json!("support_mode");
            let category = top_category
                .filter(|_| confidence >= self.threshold)
                .unwrap_or_else(|| "resources".to_string());
            return support(
                lang,
                &category,
                reason::SUPPORT_MODE,
                Reasons::new(
                    "المحادثة في وضع الدعم البشري",
                    "La conversation est en mode assistance humaine",
                    "The conversation is in human-support mode",
                ),
                1.0,
                evidence,
                hits,
            );
        }
        if hits.is_empty() || confidence < self.threshold {
            // Step 4b. Nothing confident to answer from, and the message reads as another
            // subject by meaning: the same reply as the scope rules', not a ticket.
            match self.scope_by_meaning(text).await {
                Some((score, Some(m))) => {
                    let mut d = out_of_scope(lang, m);
                    d.confidence = f64::from(score.probability);
                    evidence["step"] = json!("scope_net");
                    evidence["rule"] = json!(d.evidence["rule"]);
                    evidence["matched"] = json!(d.evidence["matched"]);
                    evidence["scope_net"] = json!(score);
                    d.evidence = evidence;
                    d.hits = hits;
                    return d;
                }
                Some((score, None)) => evidence["scope_net"] = json!(score),
                None => {}
            }
            let (code, reasons) = if hits.is_empty() {
                (
                    reason::NO_SOURCE_IN_LANGUAGE,
                    Reasons::new(
                        "لا يوجد مصدر معتمد بلغة الشخص",
                        "Aucune source approuvée dans la langue de la personne",
                        "No approved source in the person's language",
                    ),
                )
            } else {
                (
                    reason::LOW_CONFIDENCE,
                    Reasons::new(
                        "لا يوجد مصدر معتمد فوق عتبة الثقة",
                        "Aucune source approuvée au-dessus du seuil de confiance",
                        "No approved source above the confidence threshold",
                    ),
                )
            };
            if self.clarify && !ctx.clarified_before {
                evidence["below"] = json!(code);
                return Decision {
                    decision: Route::Rag,
                    category: None,
                    priority: None,
                    reason_code: reason::CLARIFY.to_string(),
                    reason: Reasons::new(
                        "ثقة منخفضة: سؤال توضيحي واحد",
                        "Confiance faible : une question de clarification",
                        "Low confidence: one clarifying question",
                    ),
                    confidence,
                    lang,
                    evidence,
                    model_used: Some(OFFLINE_MODEL.to_string()),
                    prompt_tokens: None,
                    completion_tokens: None,
                    reply: clarifying_question(lang).to_string(),
                    answer: None,
                    crisis: None,
                    hits,
                };
            }
            // Below the threshold the best source may still name the topic, but far below it the
            // "best" source is noise (an off-topic message's nearest document may well be the
            // crisis article): its category is used only from half the threshold up.
            let category = top_category
                .filter(|_| confidence >= self.threshold / 2.0)
                .unwrap_or_else(|| "mental_health".to_string());
            return support(lang, &category, code, reasons, confidence, evidence, hits);
        }

        // Step 5. Answer from the approved chunks only: the configured chat model, else (and
        // whenever the model fails) the offline extractive answer.
        let mut model_used = OFFLINE_MODEL.to_string();
        let mut tokens = (None, None);
        let mut answer = None;
        if let Some(model) = &self.model {
            let source_lang = super::answer::answer_source_lang(lang, &hits);
            let sources: Vec<Hit> = hits
                .iter()
                .filter(|h| h.lang == source_lang)
                .take(ANSWER_CHUNKS)
                .cloned()
                .collect();
            evidence["model"] = json!(model.model());
            match model.answer(text, lang, &sources).await {
                Ok(ModelReply::Declined {
                    prompt_tokens,
                    completion_tokens,
                }) => {
                    // The model may turn RAG into SUPPORT (never the reverse: it is not asked
                    // on the SUPPORT paths).
                    let category = top_category.unwrap_or_else(|| "mental_health".to_string());
                    let mut d = support(
                        lang,
                        &category,
                        reason::MODEL_DECLINED,
                        Reasons::new(
                            "النموذج: المصادر المعتمدة لا تجيب عن السؤال",
                            "Le modèle : les sources approuvées ne répondent pas à la question",
                            "The model found that the approved sources do not answer the question",
                        ),
                        confidence,
                        evidence,
                        hits,
                    );
                    d.model_used = Some(model.model().to_string());
                    d.prompt_tokens = prompt_tokens;
                    d.completion_tokens = completion_tokens;
                    return d;
                }
                Ok(ModelReply::Answer {
                    text: written,
                    cited,
                    prompt_tokens,
                    completion_tokens,
                }) => {
                    // Uncited text still came from these sources only: cite them all then.
                    let used: Vec<&Hit> = if cited.is_empty() {
                        sources.iter().collect()
                    } else {
                        cited.iter().map(|&i| &sources[i]).collect()
                    };
                    answer = Some(finish_answer(lang, &written, &used));
                    model_used = model.model().to_string();
                    tokens = (prompt_tokens, completion_tokens);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "chat model failed; answering with the extractive answer");
                    evidence["model_error"] = json!(e.to_string());
                }
            }
        }
        let mut answer = match answer {
            Some(a) => a,
            None => {
                let meaning = self.sentence_meaning(pool, text, &hits).await;
                evidence["sentences_by_meaning"] = json!(!meaning.is_empty());
                compose_answer(text, lang, &hits, &meaning)
            }
        };
        // The articles name the service's numbers as placeholders: the person reads the
        // configured numbers (or plain words when none are configured), never `{{...}}`.
        answer.text = crisis::fill_numbers(&answer.text, lang, &self.numbers);
        evidence["cited_documents"] = json!(
            answer
                .citations
                .iter()
                .map(|c| c.document_id)
                .collect::<Vec<_>>()
        );
        Decision {
            decision: Route::Rag,
            category: None,
            priority: None,
            reason_code: reason::RAG_CONFIDENT.to_string(),
            reason: Reasons::new(
                "مصادر معتمدة فوق عتبة الثقة",
                "Sources approuvées au-dessus du seuil de confiance",
                "Approved sources above the confidence threshold",
            ),
            confidence,
            lang,
            evidence,
            model_used: Some(model_used),
            prompt_tokens: tokens.0,
            completion_tokens: tokens.1,
            reply: answer.text.clone(),
            answer: Some(answer),
            crisis: None,
            hits,
        }
    }
}

/// The decision on a message about another subject: the assistant says what the service helps
/// with and that a person can be asked for; no ticket.
fn out_of_scope(lang: Lang, m: OffTopicMatch) -> Decision {
    Decision {
        decision: Route::Rag,
        category: None,
        priority: None,
        reason_code: reason::OUT_OF_SCOPE.to_string(),
        reason: Reasons::new(
            "رسالة خارج مواضيع الخدمة",
            "Message hors des sujets du service",
            "Message outside the service's subjects",
        ),
        confidence: 1.0,
        lang,
        evidence: json!({"step": "scope", "rule": m.rule_id, "matched": m.matched, "lang": lang.code()}),
        model_used: Some(OFFLINE_MODEL.to_string()),
        prompt_tokens: None,
        completion_tokens: None,
        reply: out_of_scope_message(lang).to_string(),
        answer: None,
        crisis: None,
        hits: Vec::new(),
    }
}

/// The crisis decision: fixed, whatever else is true of the message.
fn crisis_decision(m: CrisisMatch, numbers: &CrisisNumbers) -> Decision {
    // The safety message goes out in the language the person just wrote in (the gate reads it
    // from the message), which is the language they can read right now.
    let lang = m.language;
    let (ar, fr, en) = crisis_kind_names(m.kind);
    Decision {
        decision: Route::Support,
        category: Some(crisis::CATEGORY.to_string()),
        priority: Some(crisis::PRIORITY.to_string()),
        reason_code: format!("{}{}", reason::CRISIS_PREFIX, m.kind.as_str()),
        reason: Reasons {
            ar: format!("بوابة الأزمات: {ar}"),
            fr: format!("Porte de crise : {fr}"),
            en: format!("Crisis gate: {en}"),
        },
        confidence: 1.0,
        lang,
        evidence: json!({
            "step": "crisis_gate",
            "rule": m.rule_id,
            "kind": m.kind.as_str(),
            "matched": m.matched,
        }),
        model_used: None,
        prompt_tokens: None,
        completion_tokens: None,
        reply: crisis::safety_message(lang, numbers),
        answer: None,
        crisis: Some(m),
        hits: Vec::new(),
    }
}

fn crisis_kind_names(kind: CrisisKind) -> (&'static str, &'static str, &'static str) {
    // Exhaustive on purpose: a new kind of crisis cannot ship without its reason texts.
    match kind {
        CrisisKind::SuicidalIdeation => {
            ("أفكار انتحارية", "idées suicidaires", "suicidal ideation")
        }
        CrisisKind::SuicidePlan => ("خطة انتحار", "projet de suicide", "suicide plan"),
        CrisisKind::SelfHarm => ("إيذاء النفس", "automutilation", "self-harm"),
        CrisisKind::Overdose => ("جرعة زائدة", "surdose", "overdose"),
        CrisisKind::Poisoning => ("تسمم", "empoisonnement", "poisoning"),
        CrisisKind::DangerToSelf => ("خطر على النفس", "danger pour soi-même", "danger to self"),
        CrisisKind::DangerToOthers => ("خطر على الآخرين", "danger pour autrui", "danger to others"),
        CrisisKind::AbuseViolence => (
            "إساءة أو عنف",
            "maltraitance ou violence",
            "abuse or violence",
        ),
        CrisisKind::ThirdPartyCrisis => (
            "شخص آخر في أزمة",
            "une autre personne en crise",
            "someone else in crisis",
        ),
    }
}

fn support(
    lang: Lang,
    category: &str,
    code: &str,
    reason: Reasons,
    confidence: f64,
    evidence: Value,
    hits: Vec<Hit>,
) -> Decision {
    // A topic the gate did not flag but whose best document is about crises still deserves a
    // quick human answer.
    let priority = if category == crisis::CATEGORY {
        "high"
    } else {
        "medium"
    };
    Decision {
        decision: Route::Support,
        category: Some(category.to_string()),
        priority: Some(priority.to_string()),
        reason_code: code.to_string(),
        reason,
        confidence,
        lang,
        evidence,
        model_used: None,
        prompt_tokens: None,
        completion_tokens: None,
        reply: handover_message(lang).to_string(),
        answer: None,
        crisis: None,
        hits,
    }
}

fn retrieval_error_decision(
    lang: Lang,
    human: Option<&HumanRequestMatch>,
    error: &str,
) -> Decision {
    tracing::warn!(error, "retrieval failed; the message goes to a human");
    let mut evidence = json!({ "step": "retrieval", "error": error });
    if let Some(h) = human {
        evidence["rule"] = json!(h.rule_id);
    }
    let (code, reason) = match human {
        Some(_) => (
            reason::HUMAN_REQUESTED,
            Reasons::new(
                "طلب صريح للتحدث مع شخص",
                "Demande explicite de parler à quelqu'un",
                "Explicit request for a human",
            ),
        ),
        None => (
            reason::RETRIEVAL_ERROR,
            Reasons::new(
                "تعذر البحث في قاعدة المعرفة",
                "La recherche dans la base de connaissances a échoué",
                "Searching the knowledge base failed",
            ),
        ),
    };
    support(lang, "resources", code, reason, 0.0, evidence, Vec::new())
}

fn chunk_evidence(hits: &[Hit]) -> Value {
    Value::Array(
        hits.iter()
            .map(|h| {
                json!({
                    "chunk_id": h.chunk_id,
                    "document_id": h.document_id,
                    "score": h.score,
                    "similarity": h.vector_similarity,
                    "text_rank": h.text_rank,
                })
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_parses_its_codes() {
        assert_eq!("support".parse::<Mode>().unwrap(), Mode::Support);
        assert_eq!(Mode::Auto.as_str(), "AUTO");
        assert!("x".parse::<Mode>().is_err());
    }
}
