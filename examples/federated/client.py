"""A hospital's client: each round it fine-tunes the server's adapter on the site's own notes
(de-identified first) and sends back the adapter and its example count. Which data, folder
and model are the SuperNode's --node-config (site, train, validation, workdir, model)."""

import medgen.federated

# Local training per round; the rank, alpha and targets come from the server's adapter.
app = medgen.federated.client_app(max_steps=20, batch_size=4, lr=3e-4, warmup_ratio=0.05, eval_generate=0,
                                  max_source_length=512, max_target_length=256)
