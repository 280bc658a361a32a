"""Sync rules: which ECR images go to which OCIR regions, under which repository name.

Without a rules file (``SYNC_RULES_FILE`` / ``--rules``) one default rule sends every
tag of every repository to every region of ``OCI_REPO_REGION_KEY`` as
``<namespace>/<repository>``, with ``SYNC_DELETE_POLICY`` and referrers on. With one,
the first rule an image matches decides; an image no rule matches is not synced.
The format is documented in ``docs/rules.example.yaml``.

Typical use::

    rules = load_rules(settings.rules_file, region_keys=settings.region_keys,
                       namespace=settings.namespace, delete_policy=settings.delete_policy)
    placement = rules.place("team/web", "1.4")        # None: not synced
    placement.destinations                              # {"mel": "ns/mirror/web"}
    placement.delete_policy, placement.referrers

or, where a :class:`Placer` is wanted, ``RulesPlacer(rules, settings.region_endpoint)``
(``service.wiring.build_placer``). Nothing here reads the settings or the environment.
"""

# Nothing is imported here: ``settings`` needs ``rules.policy`` alone, and loading the
# whole package would pull YAML and the rule builder into every command's start-up.
