"""The learning layer: ratings -> a critic.

- ``base``: the ``Learner`` protocol (a NamedTuple of pure functions, each typed by a
  Protocol), its pytree ``LearnerState`` and the rated-loop rows (``Rated``, ``grow``).
- ``bayes_head``: the default learner, a Bayesian logistic head with a Laplace posterior.
- ``paper_cnn``: the paper's CNN from scratch (``--pretrained none``).
- ``training``: the CNN's Adam steps and augmentation.
- ``taste_prior``: the taste prior file the head starts from.
- ``registry``: the learner kinds, and the one boundary that turns ``--pretrained`` into
  a learner and the pipeline it scores with.

It may import ``ddjax.core``, ``ddjax.io``, ``ddjax.sampling``, ``ddjax.errors`` and
``ddjax.limits``; nothing here knows of sessions, raters or the shells above.
"""
