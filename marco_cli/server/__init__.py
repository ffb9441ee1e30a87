"""``marco serve``: an OpenAI-compatible HTTP API over the Reasoner. Only this
package imports FastAPI; ``service`` and ``schema`` hold the logic, ``app`` the routes."""
