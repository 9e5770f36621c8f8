package dev.retina.server.protocol;

/**
 * A failure to report to the client as OpenAI's error body with an HTTP status. Its message is shown to the client,
 * so it must never carry internal exception text: build it from the request's own values and fixed words.
 */
public final class ApiException extends RuntimeException {
    public static final String INVALID_REQUEST = "invalid_request_error";
    public static final String SERVER_ERROR = "server_error";

    private final int status;
    private final String type;
    private final String param;
    private final String code;

    public ApiException(int status, String type, String message, String param, String code) {
        super(message, null, false, false);
        if (status < 400 || status > 599) throw new IllegalArgumentException("not an error status: " + status);
        this.status = status;
        this.type = type;
        this.param = param;
        this.code = code;
    }

    /** 400 for a bad value of {@code param} (null when no single parameter is to blame). */
    public static ApiException badRequest(String message, String param) {
        return new ApiException(400, INVALID_REQUEST, message, param, null);
    }

    /** 400 {@code context_length_exceeded}: the message gives the limit and the numbers asked for. */
    public static ApiException contextLengthExceeded(String message, String param) {
        return new ApiException(400, INVALID_REQUEST, message, param, "context_length_exceeded");
    }

    public static ApiException modelNotFound(String model) {
        return new ApiException(404, INVALID_REQUEST, "The model '" + truncate(model) + "' does not exist",
                "model", "model_not_found");
    }

    public static ApiException unavailable(String message) {
        return new ApiException(503, SERVER_ERROR, message, null, null);
    }

    /** 500 with a fixed message: the cause is logged, never sent. */
    public static ApiException internal() {
        return new ApiException(500, SERVER_ERROR, "The server had an error while processing your request", null, null);
    }

    public int status() {
        return status;
    }

    public ErrorResponse toBody() {
        return new ErrorResponse(new ErrorResponse.ErrorBody(getMessage(), type, param, code));
    }

    /** Client-supplied values echoed in messages are cut short so an error never grows with the request. */
    public static String truncate(String value) {
        if (value == null) return "null";
        return value.length() <= 80 ? value : value.substring(0, 77) + "...";
    }
}
