//! Optional step 4 with a model: an OpenAI-compatible chat model (`/v1/chat/completions`:
//! OpenAI, Ollama, vLLM, llama.cpp server, ...) writes the RAG answer from the approved chunks.
//!
//! The model only ever sees a message that already passed the crisis gate, the request-for-a-
//! human detector and the retrieval threshold, and only the approved chunks retrieval found. It
//! may decline (the sources do not answer the question): the message then goes to a human
//! (`model_declined`). It can never turn SUPPORT into RAG: it is not called on that path. When
//! the provider fails, the offline extractive answer is used, so a person always gets an answer.
//!
//! Configured by `AMAL_LLM_URL` (base URL, e.g. `http://localhost:11434/v1`), `AMAL_LLM_MODEL`,
//! optionally `AMAL_LLM_API_KEY` and `AMAL_LLM_TIMEOUT_MS` (default 20000).

use std::time::Duration;

use serde::Deserialize;
use serde_json::json;

use crate::knowledge::Hit;
use crate::lang::Lang;

/// What the model answers when the sources do not answer the question.
pub const DECLINE_TOKEN: &str = "NO_ANSWER";

/// Why the chat model could not be used.
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    /// The configuration is incomplete.
    #[error("chat model configuration: {0}")]
    Config(String),
    /// The request failed or the response was unusable.
    #[error("chat model at {url}: {reason}")]
    Provider {
        /// The endpoint.
        url: String,
        /// What went wrong.
        reason: String,
    },
}

/// An OpenAI-compatible chat model.
#[derive(Debug, Clone)]
pub struct ChatModel {
    endpoint: String,
    model: String,
    api_key: Option<String>,
    client: reqwest::Client,
}

/// The model's reply to one grounded question.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelReply {
    /// An answer, with the 0-based indexes (into the hits given) of the sources it cites.
    Answer {
        /// The answer text (without a sources line).
        text: String,
        /// Cited sources.
        cited: Vec<usize>,
        /// Prompt tokens reported by the provider.
        prompt_tokens: Option<i32>,
        /// Completion tokens reported by the provider.
        completion_tokens: Option<i32>,
    },
    /// The sources do not answer: a human should.
    Declined {
        /// Prompt tokens reported by the provider.
        prompt_tokens: Option<i32>,
        /// Completion tokens reported by the provider.
        completion_tokens: Option<i32>,
    },
}

#[derive(Deserialize)]
struct ChatResponse {
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Choice {
    message: ChoiceMessage,
}

#[derive(Deserialize)]
struct ChoiceMessage {
    #[serde(default)]
    content: Option<String>,
}

#[derive(Deserialize)]
struct Usage {
    #[serde(default)]
    prompt_tokens: Option<i32>,
    #[serde(default)]
    completion_tokens: Option<i32>,
}

fn language_name(lang: Lang) -> &'static str {
    match lang {
        Lang::Ar => "Arabic",
        Lang::Fr => "French",
        Lang::En => "English",
    }
}

impl ChatModel {
    /// A client for `base_url` (`.../v1` or the full `.../chat/completions`).
    pub fn new(
        base_url: &str,
        model: &str,
        api_key: Option<String>,
        timeout: Duration,
    ) -> Result<Self, LlmError> {
        let base = base_url.trim().trim_end_matches('/');
        if base.is_empty() || model.trim().is_empty() {
            return Err(LlmError::Config("a URL and a model are required".into()));
        }
        let endpoint = if base.ends_with("/chat/completions") {
            base.to_string()
        } else if base.ends_with("/v1") {
            format!("{base}/chat/completions")
        } else {
            format!("{base}/v1/chat/completions")
        };
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| LlmError::Config(e.to_string()))?;
        Ok(ChatModel {
            endpoint,
            model: model.trim().to_string(),
            api_key,
            client,
        })
    }

    /// From `AMAL_LLM_URL`, `AMAL_LLM_MODEL`, `AMAL_LLM_API_KEY`, `AMAL_LLM_TIMEOUT_MS`; `None`
    /// when `AMAL_LLM_URL` is unset (the offline default).
    pub fn from_env() -> Result<Option<Self>, LlmError> {
        let get = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let Some(url) = get("AMAL_LLM_URL") else {
            return Ok(None);
        };
        let model = get("AMAL_LLM_MODEL").ok_or_else(|| {
            LlmError::Config("AMAL_LLM_URL is set but AMAL_LLM_MODEL is not".into())
        })?;
        let timeout = match get("AMAL_LLM_TIMEOUT_MS") {
            Some(ms) => Duration::from_millis(ms.trim().parse().map_err(|_| {
                LlmError::Config(format!("AMAL_LLM_TIMEOUT_MS={ms:?} is not a number"))
            })?),
            None => Duration::from_secs(20),
        };
        Self::new(&url, &model, get("AMAL_LLM_API_KEY"), timeout).map(Some)
    }

    /// The model's name (`decision_logs.model_used`).
    pub fn model(&self) -> &str {
        &self.model
    }

    /// Asks the model to answer `question` in `lang` from `hits` only.
    pub async fn answer(
        &self,
        question: &str,
        lang: Lang,
        hits: &[Hit],
    ) -> Result<ModelReply, LlmError> {
        let sources: Vec<String> = hits
            .iter()
            .enumerate()
            // Titles are stripped when ingested, but documents stored before that was done
            // were not: once more here.
            .map(|(i, h)| {
                let title = crate::knowledge::pii::strip(&h.title).0;
                format!("[{}] {title}\n{}", i + 1, h.content)
            })
            .collect();
        let system = format!(
            "You are the assistant of a help service for addiction and mental health in Algeria. \
             Answer ONLY from the numbered sources below, in {language}, in at most 120 words, warmly \
             and plainly, without diagnosing or prescribing. Cite the sources you use as [1], [2]. \
             If the sources do not answer the question, reply exactly {DECLINE_TOKEN} and nothing else.",
            language = language_name(lang)
        );
        // Nothing personal leaves the service: the question is the person's own words (the
        // approved sources were stripped when ingested).
        let (question, _) = crate::knowledge::pii::strip(question);
        let body = json!({
            "model": self.model,
            "temperature": 0,
            "messages": [
                {"role": "system", "content": system},
                {"role": "user", "content": format!("Sources:\n\n{}\n\nQuestion: {question}", sources.join("\n\n"))},
            ],
        });
        let err = |reason: String| LlmError::Provider {
            url: self.endpoint.clone(),
            reason,
        };
        let mut req = self.client.post(&self.endpoint).json(&body);
        if let Some(key) = &self.api_key {
            req = req.bearer_auth(key);
        }
        let response = req
            .send()
            .await
            .map_err(|e| err(format!("request failed: {e}")))?;
        let status = response.status();
        if !status.is_success() {
            return Err(err(format!("HTTP {status}")));
        }
        let parsed: ChatResponse = response
            .json()
            .await
            .map_err(|e| err(format!("not the expected JSON ({e})")))?;
        let text = parsed
            .choices
            .into_iter()
            .next()
            .and_then(|c| c.message.content)
            .unwrap_or_default()
            .trim()
            .to_string();
        let (prompt_tokens, completion_tokens) = parsed
            .usage
            .map(|u| (u.prompt_tokens, u.completion_tokens))
            .unwrap_or((None, None));
        if text.is_empty() || text.contains(DECLINE_TOKEN) {
            return Ok(ModelReply::Declined {
                prompt_tokens,
                completion_tokens,
            });
        }
        let cited = cited_sources(&text, hits.len());
        Ok(ModelReply::Answer {
            text,
            cited,
            prompt_tokens,
            completion_tokens,
        })
    }
}

/// The 0-based indexes of `[n]` markers in `text` that name one of `count` sources, in order.
pub fn cited_sources(text: &str, count: usize) -> Vec<usize> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('[') {
        rest = &rest[open + 1..];
        let Some(close) = rest.find(']') else { break };
        for part in rest[..close].split([',', ' ']) {
            if let Ok(n) = part.trim().parse::<usize>()
                && (1..=count).contains(&n)
                && !out.contains(&(n - 1))
            {
                out.push(n - 1);
            }
        }
        rest = &rest[close + 1..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn citations_are_parsed_and_bounded() {
        assert_eq!(
            cited_sources("Sleep well [1]. Also [2, 3] and [9] [1]", 3),
            vec![0, 1, 2]
        );
        assert!(cited_sources("no markers", 3).is_empty());
    }

    #[test]
    fn endpoints_are_completed() {
        let t = Duration::from_secs(1);
        assert_eq!(
            ChatModel::new("http://h:1/v1/", "m", None, t)
                .unwrap()
                .endpoint,
            "http://h:1/v1/chat/completions"
        );
        assert_eq!(
            ChatModel::new("http://h:1", "m", None, t).unwrap().endpoint,
            "http://h:1/v1/chat/completions"
        );
        assert!(ChatModel::new("", "m", None, t).is_err());
    }
}
