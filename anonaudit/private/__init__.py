"""Differentially private generative models (issue 5): ANN and fully spiking VAEs trained with
DP-SGD (Opacus), honest privacy accounting, subject-level privacy, and attack audits.

Layout: ``lif`` (spiking neuron), ``layers`` (input geometry and shared blocks), ``vae_ann`` and
``vae_spiking`` (the two models), ``dp`` (DP-SGD training and accounting), ``data`` (digits, MNIST,
sensor windows and the audit splits), ``evaluation`` (utility, robustness, membership inference).
"""
