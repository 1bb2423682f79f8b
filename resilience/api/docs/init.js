// Swagger UI over the API's own schema. This file, and not an inline script, starts it:
// the page runs under the tablet UI's Content-Security-Policy (script-src 'self').
window.ui = SwaggerUIBundle({
  url: "/api/v1/openapi.json",
  dom_id: "#swagger-ui",
  layout: "BaseLayout",
  deepLinking: true,
  showExtensions: true,
  showCommonExtensions: true,
  persistAuthorization: false, // a token pasted here is not kept in the browser's storage
  validatorUrl: null, // no badge from validator.swagger.io: nothing leaves the gateway
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
});
