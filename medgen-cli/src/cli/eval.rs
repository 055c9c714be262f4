//! `medgen eval`: ROUGE (as rouge-score) and BLEU (as sacrebleu) of predictions against
//! references read from two files.

use std::path::{Path, PathBuf};

use medgen::metrics::{self, Bleu, Rouge, Score};
use medgen::{MedgenError, Result};
use serde::Serialize;

#[derive(clap::Args)]
pub struct Args {
    /// Predictions, one example per line: plain text, or JSON lines (each a JSON string or an
    /// object with a "text" string; blank lines skipped), chosen by whether the first
    /// non-empty line starts with `"` or `{`.
    #[arg(long)]
    pred: PathBuf,
    /// References, one per prediction, in either format.
    #[arg(long = "ref")]
    reference: PathBuf,
    /// Porter-stem tokens for ROUGE (rouge-score's use_stemmer).
    #[arg(long)]
    stem: bool,
    /// One JSON object with the means, corpus BLEU and per-example scores.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Report<'a> {
    n: usize,
    /// Mean F1 over the examples.
    rouge1: f64,
    rouge2: f64,
    #[serde(rename = "rougeL")]
    rouge_l: f64,
    #[serde(rename = "rougeLsum")]
    rouge_lsum: f64,
    /// Corpus BLEU, not the mean of the sentence scores.
    bleu: f64,
    bleu_detail: &'a Bleu,
    per_example: &'a [Example],
}

#[derive(Serialize)]
struct Example {
    #[serde(flatten)]
    rouge: Rouge,
    /// Sentence BLEU.
    bleu: f64,
}

pub fn run(args: Args) -> Result<()> {
    let preds = read_examples(&args.pred, "pred")?;
    let refs = read_examples(&args.reference, "ref")?;
    if preds.len() != refs.len() {
        return Err(MedgenError::InvalidArgument {
            name: "ref",
            reason: format!(
                "{} has {} examples but {} has {}",
                args.pred.display(),
                preds.len(),
                args.reference.display(),
                refs.len()
            ),
        });
    }
    if preds.is_empty() {
        return Err(MedgenError::InvalidArgument {
            name: "pred",
            reason: format!("no examples in {}", args.pred.display()),
        });
    }
    let examples: Vec<Example> = preds
        .iter()
        .zip(&refs)
        .map(|(p, r)| Example {
            rouge: metrics::rouge(p, r, args.stem),
            bleu: metrics::sentence_bleu(p, r).score,
        })
        .collect();
    let preds: Vec<&str> = preds.iter().map(String::as_str).collect();
    let refs: Vec<&str> = refs.iter().map(String::as_str).collect();
    let bleu = metrics::corpus_bleu(&preds, &refs)?;
    let mean = |score: fn(&Rouge) -> Score| -> Score {
        let n = examples.len() as f64;
        let sum = |field: fn(&Score) -> f64| {
            examples
                .iter()
                .map(|e| field(&score(&e.rouge)))
                .sum::<f64>()
                / n
        };
        Score {
            precision: sum(|s| s.precision),
            recall: sum(|s| s.recall),
            fmeasure: sum(|s| s.fmeasure),
        }
    };
    let means = [
        ("rouge1", mean(|r| r.rouge1)),
        ("rouge2", mean(|r| r.rouge2)),
        ("rougeL", mean(|r| r.rouge_l)),
        ("rougeLsum", mean(|r| r.rouge_lsum)),
    ];
    if args.json {
        let report = Report {
            n: examples.len(),
            rouge1: means[0].1.fmeasure,
            rouge2: means[1].1.fmeasure,
            rouge_l: means[2].1.fmeasure,
            rouge_lsum: means[3].1.fmeasure,
            bleu: bleu.score,
            bleu_detail: &bleu,
            per_example: &examples,
        };
        println!("{}", serde_json::to_string(&report).unwrap_or_default());
        return Ok(());
    }
    println!(
        "{} examples, ROUGE {}",
        examples.len(),
        if args.stem {
            "with stemming"
        } else {
            "without stemming"
        }
    );
    println!(
        "{:<10} {:>9} {:>9} {:>9}",
        "mean", "precision", "recall", "F1"
    );
    for (name, s) in means {
        println!(
            "{name:<10} {:>9.4} {:>9.4} {:>9.4}",
            s.precision, s.recall, s.fmeasure
        );
    }
    // sacrebleu's own summary line.
    let precisions: Vec<String> = bleu.precisions.iter().map(|p| format!("{p:.1}")).collect();
    let ratio = if bleu.ref_len > 0 {
        bleu.sys_len as f64 / bleu.ref_len as f64
    } else {
        0.0
    };
    println!(
        "BLEU = {:.2} {} (BP = {:.3} ratio = {ratio:.3} hyp_len = {} ref_len = {})",
        bleu.score,
        precisions.join("/"),
        bleu.bp,
        bleu.sys_len,
        bleu.ref_len
    );
    Ok(())
}

/// The examples of one file; `option` names the file's option in errors.
fn read_examples(path: &Path, option: &'static str) -> Result<Vec<String>> {
    let text = super::read_text(Some(path)).map_err(|e| match e {
        MedgenError::InvalidArgument { reason, .. } => MedgenError::InvalidArgument {
            name: option,
            reason: format!("{}: {reason}", path.display()),
        },
        other => other,
    })?;
    let json_lines = text
        .lines()
        .map(str::trim_start)
        .find(|line| !line.is_empty())
        .is_some_and(|line| line.starts_with(['"', '{']));
    if !json_lines {
        return Ok(text.lines().map(str::to_string).collect());
    }
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            parse_json_line(line).map_err(|reason| MedgenError::InvalidArgument {
                name: option,
                reason: format!("{} line {}: {reason}", path.display(), i + 1),
            })
        })
        .collect()
}

fn parse_json_line(line: &str) -> std::result::Result<String, String> {
    match serde_json::from_str(line) {
        Ok(serde_json::Value::String(text)) => Ok(text),
        Ok(serde_json::Value::Object(mut object)) => match object.remove("text") {
            Some(serde_json::Value::String(text)) => Ok(text),
            _ => Err("the object has no \"text\" string".into()),
        },
        Ok(_) => Err("expected a JSON string or an object with a \"text\" string".into()),
        Err(e) => Err(format!("malformed JSON ({e})")),
    }
}
