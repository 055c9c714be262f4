//! `medgen privacy`: the DP-SGD accountant on its own, for planning a study: the ε a run
//! spends, or the noise multiplier a target ε needs (Opacus's RDP accountant).

use medgen::privacy;
use medgen::{MedgenError, Result};

#[derive(clap::Subcommand)]
pub enum Command {
    /// The ε that `--steps` steps at a sample rate and noise multiplier spend at `--delta`.
    Epsilon {
        /// Each example's probability of joining a batch: batch size / examples.
        #[arg(long, allow_negative_numbers = true)]
        sample_rate: f64,
        /// The noise's standard deviation over the clipping norm.
        #[arg(long, allow_negative_numbers = true)]
        noise_multiplier: f64,
        #[arg(long)]
        steps: u64,
        #[arg(long, allow_negative_numbers = true)]
        delta: f64,
        /// One JSON object instead of a line.
        #[arg(long)]
        json: bool,
    },
    /// The noise multiplier that keeps a run within (`--epsilon`, `--delta`), as Opacus's
    /// get_noise_multiplier finds it.
    Noise {
        #[arg(long, allow_negative_numbers = true)]
        epsilon: f64,
        #[arg(long, allow_negative_numbers = true)]
        delta: f64,
        #[arg(long, allow_negative_numbers = true)]
        sample_rate: f64,
        /// Epochs of the run (steps = int(epochs / sample rate)); or give --steps.
        #[arg(long, conflicts_with = "steps", required_unless_present = "steps", allow_negative_numbers = true)]
        epochs: Option<f64>,
        #[arg(long)]
        steps: Option<u64>,
        #[arg(long)]
        json: bool,
    },
}

pub fn run(command: Command) -> Result<()> {
    match command {
        Command::Epsilon { sample_rate, noise_multiplier, steps, delta, json } => {
            let mechanism = privacy::Mechanism { sample_rate, noise_multiplier, steps };
            let spent = privacy::spent(&[mechanism], delta)?;
            if json {
                let value = serde_json::json!({
                    "epsilon": spent.epsilon, "delta": delta, "order": spent.order, "sample_rate": sample_rate,
                    "noise_multiplier": noise_multiplier, "steps": steps, "accountant": privacy::ACCOUNTANT,
                });
                println!("{value}");
            } else {
                if spent.order.is_nan() {
                    println!("epsilon {} at delta {delta}", spent.epsilon);
                } else {
                    println!("epsilon {} at delta {delta} (RDP order {})", spent.epsilon, spent.order);
                }
            }
        }
        Command::Noise { epsilon, delta, sample_rate, epochs, steps, json } => {
            let steps = match (steps, epochs) {
                (Some(s), _) => s,
                (None, Some(e)) => privacy::steps_for_epochs(e, sample_rate)?,
                (None, None) => return Err(MedgenError::InvalidArgument { name: "steps", reason: "give --epochs or --steps".into() }),
            };
            let sigma = privacy::noise_multiplier(epsilon, delta, sample_rate, steps)?;
            let spent = privacy::epsilon(sample_rate, sigma, steps, delta)?;
            if json {
                let value = serde_json::json!({
                    "noise_multiplier": sigma, "epsilon": spent, "target_epsilon": epsilon, "delta": delta,
                    "sample_rate": sample_rate, "steps": steps, "accountant": privacy::ACCOUNTANT,
                });
                println!("{value}");
            } else {
                println!("noise multiplier {sigma} (spends epsilon {spent} in {steps} steps at delta {delta})");
            }
        }
    }
    Ok(())
}
