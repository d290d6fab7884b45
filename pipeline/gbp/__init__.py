"""The Gaussian belief propagation engine.

Independent of videos, datasets and MLflow: scalar Gaussian variables in natural parameters,
factor families vectorised over all their factors, rank-1 closed-form factor→variable messages,
damping and message dropout, robust (Tukey/Huber) precision rescaling and the compiled
iteration loop.
"""
