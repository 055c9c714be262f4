"""The federation's server: Flower's FedAvg over the sites' LoRA updates, weighted by their
example counts, with medgen's checks (base model, adapter configuration, round) on each."""

import medgen.federated

app = medgen.federated.server_app()
