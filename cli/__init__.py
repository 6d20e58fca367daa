"""The `demand` command: the composition root, the one package that imports every part.

It lives outside ``demand/`` so the base package (settings, contract, stores) imports
nothing of the project, and every part can be read without the others.
"""
